//! One conformance suite for every storage backend: local folders, S3 (a local moto server),
//! Azure Blob (Azurite) and SFTP (OpenSSH), the servers started by `scripts/test`
//! (`scripts/services/object-stores-up`, `scripts/services/sshd-up`).

use batchwin::storage::{
    Conditional, ExpectedContent, SshOptions, StorageError, Store, StoreOptions, Transferred,
};

use crate::util::{Dir, Sftp, service};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Options for the local S3 server.
pub fn s3_options(endpoint: String) -> StoreOptions {
    StoreOptions {
        pairs: vec![
            ("aws_endpoint".into(), endpoint),
            ("aws_allow_http".into(), "true".into()),
            ("aws_access_key_id".into(), "test".into()),
            ("aws_secret_access_key".into(), "test".into()),
            ("aws_region".into(), "us-east-1".into()),
        ],
        ..Default::default()
    }
}

/// Options for Azurite at `BATCHWIN_TEST_AZURITE`: the emulator's account by its endpoint (the
/// emulator setting alone reads the port from AZURITE_BLOB_STORAGE_URL, which this process
/// cannot set for itself alone; `Dir::cmd` gives it to the program).
pub fn azurite_options() -> StoreOptions {
    let endpoint =
        service("BATCHWIN_TEST_AZURITE").unwrap_or_else(|| "http://127.0.0.1:10000".into());
    StoreOptions {
        pairs: vec![
            (
                "azure_storage_account_name".into(),
                "devstoreaccount1".into(),
            ),
            (
                "azure_storage_account_key".into(),
                crate::run_location::AZURITE_KEY.into(),
            ),
            (
                "azure_storage_endpoint".into(),
                format!("{endpoint}/devstoreaccount1"),
            ),
            ("azure_allow_http".into(), "true".into()),
        ],
        ..Default::default()
    }
}

pub fn sftp_options(s: &Sftp) -> StoreOptions {
    StoreOptions {
        ssh: SshOptions {
            key: Some(s.key.clone().into()),
            known_hosts: Some(s.known_hosts.clone().into()),
            accept_new_host_key: false,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// put, get, list, head, conditional put, rename, delete, large (multipart) put, unsafe names,
/// conditional writes of small files.
fn conformance(store: &Store, d: &Dir) {
    conditional_writes(store);
    runtime().block_on(async {
        let small = d.write("small.csv", "id,name\n1,Zoë\n");
        let put = store
            .put_file("in/a/small.csv", &small, false)
            .await
            .expect("put");
        let (bytes, sha) = (put.bytes, put.sha256);
        assert_eq!(bytes, 15);
        let head = store
            .head("in/a/small.csv")
            .await
            .expect("head")
            .expect("present");
        assert_eq!(head.size, 15);
        assert_eq!(store.head("in/a/nope.csv").await.expect("head"), None);

        // A second put of the same name without overwrite is refused, with overwrite it wins.
        let other = d.write("other.csv", "id\n2\n");
        let err = store
            .put_file("in/a/small.csv", &other, false)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
        let got = d.path("got/small.csv");
        let t = store.get_file("in/a/small.csv", &got).await.expect("get");
        assert_eq!((t.bytes, t.sha256.as_str()), (15, sha.as_str()));
        assert_eq!(std::fs::read_to_string(&got).unwrap(), "id,name\n1,Zoë\n");

        // Large files go up in parts and come back whole.
        let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
        let big_path = d.write("big.bin", &big);
        let t = store
            .put_file("in/b/big.bin", &big_path, true)
            .await
            .expect("multipart put");
        let big_sha = t.sha256;
        assert_eq!(t.bytes, big.len() as u64);
        let t = store
            .get_file("in/b/big.bin", &d.path("got/big.bin"))
            .await
            .expect("get big");
        assert_eq!(
            (t.bytes, t.sha256.as_str()),
            (big.len() as u64, big_sha.as_str())
        );
        // Pieces of a large file: one by a ranged read (to the end of the file when it ends
        // first), and two into one local file, with only their bytes.
        let end = big.len() as u64;
        let r = store
            .read_range("in/b/big.bin", 1000..1100)
            .await
            .expect("ranged read");
        assert_eq!((r.bytes.as_slice(), r.size), (&big[1000..1100], end));
        let r = store
            .read_range("in/b/big.bin", end - 10..end + 10)
            .await
            .expect("ranged read at the end");
        assert_eq!((r.bytes.as_slice(), r.size), (&big[big.len() - 10..], end));
        let ranges = [5..(9 << 20), (12 << 20)..(12 << 20) + 7];
        let pieces = d.path("ranges/pieces.bin");
        let (t, size) = store
            .get_ranges_file("in/b/big.bin", &ranges, r.e_tag.as_deref(), &pieces)
            .await
            .expect("ranged download");
        let want: Vec<u8> = ranges
            .iter()
            .flat_map(|r| big[r.start as usize..r.end as usize].iter().copied())
            .collect();
        assert_eq!((t.bytes, size), (want.len() as u64, end));
        assert!(std::fs::read(&pieces).unwrap() == want, "the pieces differ");
        // Overwriting replaces the whole object.
        store
            .put_file("in/b/big.bin", &small, true)
            .await
            .expect("overwrite");
        assert_eq!(
            store.get_bytes("in/b/big.bin").await.unwrap(),
            std::fs::read(&small).unwrap()
        );
        store
            .put_file("in/b/big.bin", &big_path, true)
            .await
            .expect("overwrite back");

        // A checked upload of a file that is not what it should be never becomes visible,
        // in one request or in parts; one that is right goes up as usual.
        let wrong = ExpectedContent {
            content: Transferred {
                bytes: 15,
                sha256: "0".repeat(64),
            },
            written_by: None,
        };
        for (name, file) in [("in/c/small.csv", &small), ("in/c/big.bin", &big_path)] {
            let err = store
                .put_file_checked(name, file, false, Some(&wrong))
                .await
                .unwrap_err();
            assert!(matches!(err, StorageError::Changed { .. }), "{err}");
            assert_eq!(store.head(name).await.expect("head"), None, "{name}");
        }
        let right = ExpectedContent {
            content: Transferred {
                bytes,
                sha256: sha.clone(),
            },
            written_by: None,
        };
        let t = store
            .put_file_checked("in/c/small.csv", &small, false, Some(&right))
            .await
            .expect("checked put");
        assert_eq!(t, right.content);

        // A file known to have been complete at some moment but written again since, even
        // with as many bytes, is read and refused; one not written since goes up.
        let changed = d.write("changed.csv", "id,name\n1,Zoee\n");
        let was = store
            .put_file("in/c/changed.csv", &changed, false)
            .await
            .expect("put");
        store.delete("in/c/changed.csv").await.expect("delete");
        let written_by = std::fs::metadata(&changed).unwrap().modified().ok();
        // Past the filesystem clock's tick, so the next write has a later modification time.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        std::fs::write(&changed, "id,name\n2,Zoee\n").unwrap();
        let was = ExpectedContent {
            content: was,
            written_by,
        };
        let err = store
            .put_file_checked("in/c/changed.csv", &changed, false, Some(&was))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Changed { .. }), "{err}");
        assert_eq!(store.head("in/c/changed.csv").await.expect("head"), None);
        let unchanged = ExpectedContent {
            written_by: Some(std::time::SystemTime::now()),
            ..right.clone()
        };
        let t = store
            .put_file_checked("in/c/unchanged.csv", &small, false, Some(&unchanged))
            .await
            .expect("checked put");
        assert_eq!(t, right.content);
        assert_eq!(
            store.get_bytes("in/c/unchanged.csv").await.unwrap(),
            std::fs::read(&small).unwrap()
        );
        store.delete("in/c/unchanged.csv").await.expect("delete");
        store.delete("in/c/small.csv").await.expect("delete");

        let names: Vec<String> = store
            .list("in")
            .await
            .expect("list")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["in/a/small.csv", "in/b/big.bin"]);
        assert_eq!(store.list("in/a").await.unwrap().len(), 1);
        assert_eq!(
            store.list("nothing/here").await.unwrap(),
            vec![],
            "an absent folder lists as empty"
        );
        let sum = store
            .checksum("in/b/big.bin", None)
            .await
            .expect("checksum");
        assert_eq!(
            (sum.bytes, sum.sha256.as_str()),
            (big.len() as u64, big_sha.as_str())
        );

        // Rename, and refuse to rename onto an existing name.
        store
            .rename("in/a/small.csv", "out/small.csv")
            .await
            .expect("rename");
        assert_eq!(store.head("in/a/small.csv").await.unwrap(), None);
        assert_eq!(
            store.get_bytes("out/small.csv").await.unwrap(),
            b"id,name\n1,Zo\xc3\xab\n"
        );
        store
            .put_file("in/a/again.csv", &other, false)
            .await
            .unwrap();
        let err = store
            .rename("in/a/again.csv", "out/small.csv")
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");

        store.delete("out/small.csv").await.expect("delete");
        store
            .delete("out/small.csv")
            .await
            .expect("deleting what is gone is fine");
        assert_eq!(store.head("out/small.csv").await.unwrap(), None);

        for bad in [
            "../escape.csv",
            "/abs.csv",
            "a/../../b",
            "nul\0.csv",
            "new\nline.csv",
        ] {
            let err = store.put_file(bad, &small, true).await.unwrap_err();
            assert!(
                matches!(err, StorageError::UnsafeName { .. }),
                "{bad:?}: {err}"
            );
            let err = store.get_file(bad, &d.path("got/x")).await.unwrap_err();
            assert!(
                matches!(err, StorageError::UnsafeName { .. }),
                "{bad:?}: {err}"
            );
        }
        let err = store
            .get_file("in/a/absent.csv", &d.path("got/absent.csv"))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
        assert!(!d.path("got/absent.csv").exists());
        let leftovers: Vec<_> = std::fs::read_dir(d.path("got"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            2,
            "no temporary files left beside downloads: {leftovers:?}"
        );
    });
}

/// A small file created only where there is none, replaced only while it is the version read;
/// of two creations at once exactly one wins, and of two replacements of the same version at
/// once too where the store says its replacements are atomic.
fn conditional_writes(store: &Store) {
    runtime().block_on(async {
        let name = "lock/.lock";
        let first = store.create_bytes(name, b"first").await.expect("create");
        let err = store.create_bytes(name, b"second").await.unwrap_err();
        assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
        let read = store
            .get_versioned(name)
            .await
            .expect("read")
            .expect("present");
        assert_eq!(read.bytes, b"first");
        assert_eq!(read.version.sha256, first.sha256);
        let second = store
            .replace_bytes(name, b"second", &read.version)
            .await
            .expect("the version read is replaced");
        let err = store
            .replace_bytes(name, b"third", &read.version)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Conflict { .. }), "{err}");
        assert_eq!(store.get_bytes(name).await.unwrap(), b"second");
        let third = store
            .replace_bytes(name, b"third", &second)
            .await
            .expect("the version written is replaced");
        store.delete(name).await.unwrap();
        let err = store.replace_bytes(name, b"x", &third).await.unwrap_err();
        assert!(matches!(err, StorageError::Conflict { .. }), "{err}");
        assert_eq!(store.get_versioned(name).await.unwrap(), None);

        // At once: one creation wins.
        for round in 0..5 {
            let (a, b) = tokio::join!(
                store.create_bytes(name, b"from a"),
                store.create_bytes(name, b"from b")
            );
            assert!(a.is_ok() != b.is_ok(), "round {round}: {a:?} {b:?}");
            let won: &[u8] = if a.is_ok() { b"from a" } else { b"from b" };
            assert_eq!(store.get_bytes(name).await.unwrap(), won);
            if store.conditional() == Conditional::Atomic {
                let v = store.get_versioned(name).await.unwrap().unwrap().version;
                let (a, b) = tokio::join!(
                    store.replace_bytes(name, b"a again", &v),
                    store.replace_bytes(name, b"b again", &v)
                );
                assert!(a.is_ok() != b.is_ok(), "round {round}: {a:?} {b:?}");
            }
            store.delete(name).await.unwrap();
        }
    });
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[test]
fn local_folders_pass_the_storage_suite() {
    let d = Dir::new();
    let rt = runtime();
    let store = rt
        .block_on(Store::open(
            d.path("store").to_str().unwrap(),
            &StoreOptions::default(),
        ))
        .unwrap();
    conformance(&store, &d);
    let d = Dir::new();
    let url = format!("file://{}", d.path("store2").display());
    conformance(
        &rt.block_on(Store::open(&url, &StoreOptions::default()))
            .unwrap(),
        &d,
    );
}

#[test]
fn s3_passes_the_storage_suite() {
    let Some(endpoint) = service("BATCHWIN_TEST_S3") else {
        return;
    };
    let d = Dir::new();
    let store = runtime()
        .block_on(Store::open(
            &format!("s3://batchwin-test/{}", unique()),
            &s3_options(endpoint),
        ))
        .unwrap();
    conformance(&store, &d);
}

#[test]
fn azure_blob_passes_the_storage_suite() {
    if service("BATCHWIN_TEST_AZURITE").is_none() {
        return;
    }
    let d = Dir::new();
    let store = runtime()
        .block_on(Store::open(
            &format!("az://batchwin-test/{}", unique()),
            &azurite_options(),
        ))
        .unwrap();
    conformance(&store, &d);
}

/// A small file deleted only while it is the version read (`Store::delete_if`), where the
/// store takes the condition: a stale version is refused and the file kept, the version there
/// deletes it, and once it is gone nothing is deleted again (Azure answers 412, S3 404).
fn deletes_only_the_version_read(store: &Store, name: &str) {
    runtime().block_on(async {
        let first = store.create_bytes(name, b"first").await.expect("create");
        let second = store
            .replace_bytes(name, b"second", &first)
            .await
            .expect("replace");
        assert_ne!(first.e_tag, second.e_tag);
        let err = store.delete_if(name, &first).await.unwrap_err();
        assert!(matches!(err, StorageError::Conflict { .. }), "{err}");
        assert_eq!(store.get_bytes(name).await.unwrap(), b"second");
        assert!(store.delete_if(name, &second).await.expect("deleted"));
        assert_eq!(store.get_versioned(name).await.unwrap(), None);
        match store.delete_if(name, &second).await {
            Ok(true) | Err(StorageError::Conflict { .. }) => {}
            other => panic!("a second delete of a file that is gone: {other:?}"),
        }
        assert_eq!(store.get_versioned(name).await.unwrap(), None);
    });
}

/// Azure Blob (Azurite, by its endpoint and account key) and S3 (moto, which honours
/// `If-Match` on DeleteObject as AWS S3 does) delete conditionally. On the S3 API server that
/// checks signatures (s3s-fs, which ignores the condition) the presigned delete passes the
/// signature check and deletes the version there. Folders and SFTP say they cannot (`false`)
/// and delete nothing.
#[test]
fn s3_and_azure_blob_delete_conditionally_and_the_other_stores_say_they_cannot() {
    let rt = runtime();
    let name = "day/.lock";
    if service("BATCHWIN_TEST_AZURITE").is_some() {
        let url = format!("az://batchwin-test/{}", unique());
        let store = rt.block_on(Store::open(&url, &azurite_options())).unwrap();
        deletes_only_the_version_read(&store, name);
    }
    if let Some(s3) = service("BATCHWIN_TEST_S3") {
        let url = format!("s3://batchwin-test/{}", unique());
        let store = rt.block_on(Store::open(&url, &s3_options(s3))).unwrap();
        deletes_only_the_version_read(&store, name);
    }
    if let Some(endpoint) = service("BATCHWIN_TEST_S3_SIGV4") {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let signed = StoreOptions {
            pairs: vec![
                pair("aws_endpoint", &endpoint),
                pair("aws_allow_http", "true"),
                pair("aws_access_key_id", "batchwin-ak"),
                pair("aws_secret_access_key", "batchwin-secret-key"),
                pair("aws_region", "us-east-1"),
            ],
            ..Default::default()
        };
        let url = format!("s3://batchwin-test/{}", unique());
        let store = rt.block_on(Store::open(&url, &signed)).unwrap();
        rt.block_on(async {
            let v = store.create_bytes(name, b"first").await.expect("create");
            assert!(store.delete_if(name, &v).await.expect("deleted"));
            assert_eq!(store.get_versioned(name).await.unwrap(), None);
        });
    }

    let d = Dir::new();
    let mut others = vec![d.path("store").display().to_string()];
    let mut opts = vec![StoreOptions::default()];
    let sftp = Sftp::get();
    if let Some(s) = &sftp {
        others.push(s.folder().0);
        opts.push(sftp_options(s));
    }
    for (url, o) in others.iter().zip(&opts) {
        let store = rt.block_on(Store::open(url, o)).unwrap();
        rt.block_on(async {
            let v = store.create_bytes(name, b"first").await.expect("create");
            assert!(!store.delete_if(name, &v).await.expect("asked"), "{url}");
            assert_eq!(store.get_bytes(name).await.unwrap(), b"first", "{url}");
        });
    }
}

#[test]
fn sftp_passes_the_storage_suite() {
    let Some(s) = Sftp::get() else { return };
    let d = Dir::new();
    let (url, _) = s.folder();
    let store = runtime()
        .block_on(Store::open(&url, &sftp_options(&s)))
        .unwrap();
    conformance(&store, &d);
}

/// On SFTP a write makes the location's own folder and the folders below it (a run location's
/// new day folder), but not a folder above the location: a location whose parent is not on the
/// server (a mistyped delivery target) is refused, and nothing is made.
#[test]
fn sftp_makes_the_locations_own_folder_but_not_the_folders_above_it() {
    let Some(s) = Sftp::get() else { return };
    let d = Dir::new();
    let (url, local) = s.folder();
    let file = d.write("f.csv", "a\n");
    let rt = runtime();
    let new = rt
        .block_on(Store::open(&format!("{url}/new"), &sftp_options(&s)))
        .unwrap();
    rt.block_on(new.put_file("2026-11-29/V001/f.csv", &file, false))
        .expect("made below a new location folder");
    assert_eq!(
        std::fs::read(local.join("new/2026-11-29/V001/f.csv")).unwrap(),
        b"a\n"
    );
    rt.block_on(new.create_bytes("2026-11-30/.lock", b"{}"))
        .expect("a small file too");
    let typo = rt
        .block_on(Store::open(&format!("{url}/outbx/V001"), &sftp_options(&s)))
        .unwrap();
    let e = rt
        .block_on(typo.put_file("f.csv", &file, false))
        .expect_err("a location whose parent is missing")
        .to_string();
    assert!(
        e.contains(&format!("`{}/outbx` is not on the server", local.display())),
        "{e}"
    );
    assert!(!local.join("outbx").exists());
}

/// On SFTP a small file written conditionally (the run-location lock) is never written in
/// place: a creation is a temporary file moved to its name by the plain SFTP rename (which
/// never replaces), a replacement a temporary file renamed over it with
/// `posix-rename@openssh.com`. A reader of the server's folder meanwhile finds the file whole
/// each time it looks (never empty, short or absent), each replacement is a new file (another
/// inode), and no temporary is left behind. An overwriting upload is renamed over the old file
/// the same way.
#[test]
fn sftp_writes_small_files_whole_never_in_place() {
    use std::os::unix::fs::MetadataExt;
    let Some(s) = Sftp::get() else { return };
    let (url, local) = s.folder();
    let rt = runtime();
    let store = rt.block_on(Store::open(&url, &sftp_options(&s))).unwrap();
    let name = "day/.lock";
    let file = local.join(name);
    // Contents of different lengths, each one whole JSON.
    let body = |n: usize| {
        format!(
            "{{\"renewal\": {n}, \"pad\": \"{}\"}}",
            "x".repeat(n % 7 * 300)
        )
    };
    let mut version = rt
        .block_on(store.create_bytes(name, body(0).as_bytes()))
        .expect("created");
    let err = rt
        .block_on(store.create_bytes(name, b"another"))
        .unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), body(0).as_bytes());

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, file) = (stop.clone(), file.clone());
        std::thread::spawn(move || {
            let mut seen = 0usize;
            let mut bad = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match std::fs::read(&file) {
                    Ok(b) if serde_json::from_slice::<serde_json::Value>(&b).is_ok() => seen += 1,
                    Ok(b) => bad.push(format!("{} bytes, not whole", b.len())),
                    Err(e) => bad.push(e.to_string()),
                }
            }
            (seen, bad)
        })
    };
    let mut inode = std::fs::metadata(&file).unwrap().ino();
    for n in 1..=40 {
        version = rt
            .block_on(store.replace_bytes(name, body(n).as_bytes(), &version))
            .expect("replaced");
        let now = std::fs::metadata(&file).unwrap().ino();
        assert_ne!(now, inode, "replacement {n} was written in place");
        inode = now;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, bad) = reader.join().unwrap();
    assert!(bad.is_empty(), "a reader found the file not whole: {bad:?}");
    assert!(seen > 0);
    assert_eq!(std::fs::read(&file).unwrap(), body(40).as_bytes());

    // An overwriting upload too: renamed over the old file, which never goes missing.
    let d = Dir::new();
    let up = d.write("ledger.duckdb", "new ledger");
    rt.block_on(store.put_file("day/ledger.duckdb", &up, false))
        .unwrap();
    let before = std::fs::metadata(local.join("day/ledger.duckdb"))
        .unwrap()
        .ino();
    let up = d.write("ledger.duckdb", "newer ledger");
    rt.block_on(store.put_file("day/ledger.duckdb", &up, true))
        .unwrap();
    let after = std::fs::metadata(local.join("day/ledger.duckdb"))
        .unwrap()
        .ino();
    assert_ne!(before, after);
    assert_eq!(
        std::fs::read_to_string(local.join("day/ledger.duckdb")).unwrap(),
        "newer ledger"
    );
    rt.block_on(store.delete(name)).unwrap();
    let left: Vec<String> = std::fs::read_dir(local.join("day"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec!["ledger.duckdb".to_string()],
        "temporaries left behind"
    );
}

#[test]
fn sftp_refuses_passwords_and_unknown_or_changed_host_keys() {
    let Some(s) = Sftp::get() else { return };
    let rt = runtime();
    let (url, _) = s.folder();
    let with_password = url.replacen("root@", "root:hunter2@", 1);
    let err = rt
        .block_on(Store::open(&with_password, &sftp_options(&s)))
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("passwords are not accepted"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("hunter2"),
        "the password shows: {err}"
    );

    let mut wrong = sftp_options(&s);
    wrong.ssh.known_hosts = Some(s.wrong_known_hosts.clone().into());
    wrong.retry.attempts = 0;
    let store = rt.block_on(Store::open(&url, &wrong)).unwrap();
    let err = rt.block_on(store.list("")).unwrap_err();
    assert!(
        matches!(err, StorageError::HostKey { .. }) && err.to_string().contains("REFUSED"),
        "{err}"
    );
    // Even the first-contact switch never accepts a key that differs from a recorded one.
    wrong.ssh.accept_new_host_key = true;
    let store = rt.block_on(Store::open(&url, &wrong)).unwrap();
    assert!(matches!(
        rt.block_on(store.list("")).unwrap_err(),
        StorageError::HostKey { .. }
    ));

    let d = Dir::new();
    let empty = d.write("known_hosts", "");
    let mut unknown = sftp_options(&s);
    unknown.ssh.known_hosts = Some(empty.clone());
    let store = rt.block_on(Store::open(&url, &unknown)).unwrap();
    let err = rt.block_on(store.list("")).unwrap_err().to_string();
    assert!(
        err.contains("is not in") && err.contains("ssh-keyscan"),
        "{err}"
    );
    unknown.ssh.accept_new_host_key = true;
    let store = rt.block_on(Store::open(&url, &unknown)).unwrap();
    rt.block_on(store.list(""))
        .expect("accepted on first contact");
    let learned = std::fs::read_to_string(&empty).unwrap();
    let recorded = std::fs::read_to_string(&s.known_hosts).unwrap();
    let key_of = |t: &str| t.split_whitespace().nth(2).map(str::to_string);
    assert_eq!(
        key_of(&learned),
        key_of(&recorded),
        "the server's key was added: {learned}"
    );
}

#[test]
fn unknown_schemes_are_refused() {
    let err = runtime()
        .block_on(Store::open("ftp://host/x", &StoreOptions::default()))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("unknown scheme `ftp`"), "{err}");
}
