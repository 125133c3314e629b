//! The S3 backend against a real S3-compatible server (`s3s-fs`): objects round-trip byte for
//! byte and land in the bucket, references name the bucket, a missing object is `NotFound`, bad
//! credentials are refused by the server (the requests are really signed), and audit checkpoints
//! are published to and read back from the bucket.

use std::sync::Arc;

use carapulse_core::audit::CheckpointSink;
use carapulse_core::objects::{self, get_reference, ObjectError, ObjectStore};
use carapulse_core::testing::s3::S3Server;
use carapulse_core::testing::TestDatabase;

#[tokio::test]
async fn objects_round_trip_through_a_real_s3_server() {
    let server = S3Server::start("carapulse");
    let store = objects::from_config(&server.config()).unwrap();
    assert_eq!(store.describe(), "s3://carapulse");

    // A tool output over the inline limit, as the router stores it.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let reference = store
        .put(
            "tool-output/0193a1b2-0000-7000-8000-000000000001.json",
            big.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        reference,
        "s3://carapulse/tool-output/0193a1b2-0000-7000-8000-000000000001.json"
    );
    assert_eq!(
        get_reference(store.as_ref(), &reference).await.unwrap(),
        big
    );
    // It is a file of the served bucket, not something kept in the client.
    let on_disk = std::fs::read(
        server
            .root
            .path()
            .join("carapulse/tool-output/0193a1b2-0000-7000-8000-000000000001.json"),
    )
    .unwrap();
    assert_eq!(on_disk, big);

    // Overwrite, missing objects, keys and references that are not this store's.
    store
        .put("values/acme/web.yaml", b"a: 1\n".to_vec())
        .await
        .unwrap();
    store
        .put("values/acme/web.yaml", b"a: 2\n".to_vec())
        .await
        .unwrap();
    assert_eq!(store.get("values/acme/web.yaml").await.unwrap(), b"a: 2\n");
    assert!(matches!(
        store.get("values/acme/missing.yaml").await,
        Err(ObjectError::NotFound(_))
    ));
    assert!(matches!(
        store.put("../escape", b"x".to_vec()).await,
        Err(ObjectError::InvalidKey(_))
    ));
    assert_eq!(store.key_of("fs://values/acme/web.yaml"), None);
    assert_eq!(store.key_of("s3://other-bucket/values/acme/web.yaml"), None);
    assert_eq!(
        store.key_of("s3://carapulse/values/acme/web.yaml"),
        Some("values/acme/web.yaml")
    );

    // The server checks the signature: wrong credentials are refused, not ignored.
    let mut wrong = server.config();
    wrong.secret_access_key = Some("not-the-secret".into());
    let impostor = objects::from_config(&wrong).unwrap();
    match impostor.get("values/acme/web.yaml").await {
        Err(ObjectError::Backend(message)) => {
            assert!(
                message.contains("403") || message.to_lowercase().contains("signature"),
                "{message}"
            )
        }
        other => panic!("a bad signature must fail: {other:?}"),
    }
}

#[tokio::test]
async fn audit_checkpoints_are_published_to_the_bucket() {
    let server = S3Server::start("audit");
    let store: Arc<dyn ObjectStore> = objects::from_config(&server.config()).unwrap();
    let db = TestDatabase::create().await;
    let tenant = carapulse_core::model::TenantId::parse("acme").unwrap();
    carapulse_core::testing::seed_audit_chain(&db.store, &tenant, 5, chrono::Duration::hours(1))
        .await
        .unwrap();
    let sink = CheckpointSink::new(store, "0123456789abcdef0123456789abcdef-checkpoints");
    let published = sink
        .publish(&db.store, &tenant)
        .await
        .unwrap()
        .expect("a head to checkpoint");
    assert_eq!(published.seq, 5);
    let latest = sink.latest(&tenant).await.unwrap().expect("read back");
    assert_eq!((latest.seq, &latest.hash), (5, &published.hash));
    assert!(server
        .root
        .path()
        .join("audit/audit-checkpoints/acme/latest.json")
        .is_file());
    // Nothing new: nothing published.
    assert!(sink.publish(&db.store, &tenant).await.unwrap().is_none());
    db.drop_now().await;
}
