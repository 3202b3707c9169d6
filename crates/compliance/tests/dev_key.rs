//! The development verifying key shipped in the crate is the one the development setup makes.

use pharos_compliance::genesis::{DEV_VERIFYING_KEY, DEV_ZK_SEED};

#[test]
fn dev_verifying_key_is_the_dev_setups() {
    let (_, vk) = pharos_zkdid::insecure_dev_setup(DEV_ZK_SEED).expect("dev setup");
    let bytes = vk.to_bytes().expect("encode");
    assert!(vk.is_insecure_dev());
    if std::env::var_os("PHAROS_WRITE_DEV_KEY").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/dev_verifying_key.bin");
        std::fs::write(path, &bytes).expect("write the key");
        return;
    }
    assert_eq!(
        bytes, DEV_VERIFYING_KEY,
        "src/dev_verifying_key.bin is stale: regenerate with PHAROS_WRITE_DEV_KEY=1 cargo test -p pharos-compliance --test dev_key"
    );
}
