ferry_kit::worker_main!(
    ferry_dispatcher,
    "Ferry dispatcher: filtering, routing and causality partitioning of CDC."
);
