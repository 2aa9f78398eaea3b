ferry_kit::worker_main!(ferry_checker, "Ferry checker: verification and correction SQL.");
