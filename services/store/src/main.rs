ferry_kit::worker_main!(ferry_store, "Ferry store: binlog capture.");
