ferry_kit::worker_main!(ferry_sink, "Ferry sink: applies the FULL and APPLY streams to the target.");
