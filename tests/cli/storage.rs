//! One conformance suite for every storage backend: local folders, S3 (a local moto server)
//! and Azure Blob (Azurite), the servers started by `scripts/test`
//! (`scripts/services/object-stores-up`).

use batchwin::storage::{Store, StorageError, StoreOptions};

use crate::util::Dir;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// put, get, list, head, conditional put, rename, delete, large (multipart) put, unsafe names.
fn conformance(store: &Store, d: &Dir) {
    runtime().block_on(async {
        let small = d.write("small.csv", "id,name\n1,Zoë\n");
        let (bytes, sha) = store.put_file("in/a/small.csv", &small, false).await.expect("put");
        assert_eq!(bytes, 15);
        let head = store.head("in/a/small.csv").await.expect("head").expect("present");
        assert_eq!(head.size, 15);
        assert_eq!(store.head("in/a/nope.csv").await.expect("head"), None);

        // A second put of the same name without overwrite is refused, with overwrite it wins.
        let other = d.write("other.csv", "id\n2\n");
        let err = store.put_file("in/a/small.csv", &other, false).await.unwrap_err();
        assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
        let got = d.path("got/small.csv");
        let (n, sha2) = store.get_file("in/a/small.csv", &got).await.expect("get");
        assert_eq!((n, sha2.as_str()), (15, sha.as_str()));
        assert_eq!(std::fs::read_to_string(&got).unwrap(), "id,name\n1,Zoë\n");

        // Large files go up in parts and come back whole.
        let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
        let big_path = d.write("big.bin", &big);
        let (n, big_sha) = store.put_file("in/b/big.bin", &big_path, true).await.expect("multipart put");
        assert_eq!(n, big.len() as u64);
        let (n, sha3) = store.get_file("in/b/big.bin", &d.path("got/big.bin")).await.expect("get big");
        assert_eq!((n, sha3), (big.len() as u64, big_sha));

        let names: Vec<String> = store.list("in").await.expect("list").into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["in/a/small.csv", "in/b/big.bin"]);
        assert_eq!(store.list("in/a").await.unwrap().len(), 1);

        // Rename, and refuse to rename onto an existing name.
        store.rename("in/a/small.csv", "out/small.csv").await.expect("rename");
        assert_eq!(store.head("in/a/small.csv").await.unwrap(), None);
        assert_eq!(store.get_bytes("out/small.csv").await.unwrap(), b"id,name\n1,Zo\xc3\xab\n");
        store.put_file("in/a/again.csv", &other, false).await.unwrap();
        let err = store.rename("in/a/again.csv", "out/small.csv").await.unwrap_err();
        assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");

        store.delete("out/small.csv").await.expect("delete");
        store.delete("out/small.csv").await.expect("deleting what is gone is fine");
        assert_eq!(store.head("out/small.csv").await.unwrap(), None);

        for bad in ["../escape.csv", "/abs.csv", "a/../../b", "nul\0.csv"] {
            let err = store.put_file(bad, &small, true).await.unwrap_err();
            assert!(matches!(err, StorageError::UnsafeName { .. }), "{bad:?}: {err}");
        }
    });
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[test]
fn local_folders_pass_the_storage_suite() {
    let d = Dir::new();
    let store = Store::open(d.path("store").to_str().unwrap(), &StoreOptions::default()).unwrap();
    conformance(&store, &d);
    let url = format!("file://{}", d.path("store2").display());
    conformance(&Store::open(&url, &StoreOptions::default()).unwrap(), &d);
}

#[test]
fn s3_passes_the_storage_suite() {
    let Ok(endpoint) = std::env::var("BATCHWIN_TEST_S3") else {
        eprintln!("BATCHWIN_TEST_S3 is not set; scripts/test starts a local S3 server.");
        return;
    };
    let opts = StoreOptions {
        pairs: vec![
            ("aws_endpoint".into(), endpoint),
            ("aws_allow_http".into(), "true".into()),
            ("aws_access_key_id".into(), "test".into()),
            ("aws_secret_access_key".into(), "test".into()),
            ("aws_region".into(), "us-east-1".into()),
        ],
    };
    let d = Dir::new();
    let store = Store::open(&format!("s3://batchwin-test/{}", unique()), &opts).unwrap();
    conformance(&store, &d);
}

#[test]
fn azure_blob_passes_the_storage_suite() {
    if std::env::var_os("BATCHWIN_TEST_AZURITE").is_none() {
        eprintln!("BATCHWIN_TEST_AZURITE is not set; scripts/test starts Azurite.");
        return;
    }
    let opts = StoreOptions { pairs: vec![("azure_storage_use_emulator".into(), "true".into())] };
    let d = Dir::new();
    let store = Store::open(&format!("az://batchwin-test/{}", unique()), &opts).unwrap();
    conformance(&store, &d);
}

#[test]
fn unknown_schemes_are_refused() {
    let err = Store::open("ftp://host/x", &StoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("unknown scheme `ftp`"), "{err}");
}
