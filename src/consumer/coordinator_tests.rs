use super::*;

/// A coordinator over `dir`, without a shard (what these tests need of it is local).
fn coordinator(dir: PathBuf) -> Rc<Coordinator> {
    Rc::new(Coordinator {
        state: RefCell::new(Groups::new(Duration::from_secs(120), HashMap::new())),
        dir,
        fs: BrokerFs::default(),
        timeout: Duration::from_secs(120),
        persisting: RefCell::new(HashMap::new()),
        persisted: LocalNotify::default(),
        verified: Cell::new(true),
        verified_signal: LocalNotify::default(),
        etcd_interval: None,
        released: Cell::new(0),
    })
}

#[test]
fn etcd_writes_of_a_group_are_paced_by_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Rc::try_unwrap(coordinator(tmp.path().join("offsets")))
        .ok()
        .unwrap();
    // Without etcd, nothing waits.
    assert_eq!(c.pace("g"), None);
    c.etcd_interval = Some(Duration::from_secs(60));
    let c = c;
    assert_eq!(c.pace("g"), None, "the first write goes at once");
    let second = c.pace("g").expect("the second waits");
    assert!(second > Duration::from_secs(59) && second <= Duration::from_secs(60));
    let third = c.pace("g").expect("the third waits behind it");
    assert!(third > Duration::from_secs(119));
    assert_eq!(c.pace("other"), None, "groups are paced apart");
}

#[test]
fn commit_waits_for_a_save_still_running_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("offsets");
    rt::block_on(async move {
        let c = coordinator(dir.clone());
        let topics = vec![("t".to_string(), 1)];
        c.state
            .borrow_mut()
            .register("a", "g", &topics, Instant::now())
            .unwrap();
        // A change saved in the background, as a poll's commit of its predecessor is.
        let positions = [(("t".to_string(), 0), 42)];
        assert!(c.state.borrow_mut().set_initial("g", &positions));
        c.persist_in_background("g".to_string());
        // A COMMIT that itself changes nothing must still answer only once that save is
        // on disk: the consumer is told its position is durable.
        c.commit("a").await.unwrap();
        let saved = offsets::load_all(&c.fs, &dir).await.unwrap();
        assert_eq!(saved["g"][&("t".to_string(), 0)], 42, "{saved:?}");
    });
}

#[test]
fn an_emptied_group_is_forgotten_once_saved_and_comes_back_from_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("offsets");
    rt::block_on(async move {
        let c = coordinator(dir.clone());
        let topics = vec![("t".to_string(), 1)];
        c.state
            .borrow_mut()
            .register("a", "g", &topics, Instant::now())
            .unwrap();
        let positions = [(("t".to_string(), 0), 42)];
        assert!(c.state.borrow_mut().set_initial("g", &positions));
        c.persist_in_background("g".to_string());
        c.goodbye("a").await.unwrap();
        // Nothing of the group stays in memory, and its offsets are on disk.
        assert!(!c.state.borrow().has_group("g"));
        assert!(c.persisting.borrow().is_empty());
        assert_eq!(c.counts(), (0, 0, 0));
        let back = offsets::load_group(&c.fs, &dir, "g").await.unwrap();
        assert_eq!(back[&("t".to_string(), 0)], 42);
        assert!(offsets::load_group(&c.fs, &dir, "other")
            .await
            .unwrap()
            .is_empty());
    });
}
