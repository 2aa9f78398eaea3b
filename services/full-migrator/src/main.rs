ferry_kit::worker_main!(
    ferry_full_migrator,
    "Ferry full-migrator: structure migration and full copy into JetStream."
);
