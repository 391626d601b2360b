//! Inputs found by the fuzz targets in `fuzz/` (or made after what they found), kept as tests:
//! each must give an error or a result, never a panic.

use std::path::PathBuf;

use vigia::engine::{ModelSource, OnnxGraph, TractEngine};
use vigia::mot::{evaluate, parse_mot};

/// A minimal protobuf writer, enough for small ONNX graphs.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field_varint(field: u32, n: u64, out: &mut Vec<u8>) {
    varint(u64::from(field) << 3, out);
    varint(n, out);
}

fn field_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint((u64::from(field) << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn value_info(name: &str, dims: &[u64]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        field_varint(1, *d, &mut dim);
        field_bytes(1, &dim, &mut shape);
    }
    let mut tensor_type = Vec::new();
    field_varint(1, 1, &mut tensor_type);
    field_bytes(2, &shape, &mut tensor_type);
    let mut ty = Vec::new();
    field_bytes(1, &tensor_type, &mut ty);
    let mut vi = Vec::new();
    field_bytes(1, name.as_bytes(), &mut vi);
    field_bytes(2, &ty, &mut vi);
    vi
}

/// `y = x + w` with an initializer `w` whose dims claim far more than its 4 bytes of data.
fn model_with_huge_initializer() -> Vec<u8> {
    let mut w = Vec::new();
    for d in [1u64 << 40, 1 << 40, 1 << 40] {
        field_varint(1, d, &mut w);
    }
    field_varint(2, 1, &mut w);
    field_bytes(8, b"w", &mut w);
    field_bytes(9, &1.0f32.to_le_bytes(), &mut w);
    let mut node = Vec::new();
    field_bytes(1, b"x", &mut node);
    field_bytes(1, b"w", &mut node);
    field_bytes(2, b"y", &mut node);
    field_bytes(4, b"Add", &mut node);
    let mut graph = Vec::new();
    field_bytes(1, &node, &mut graph);
    field_bytes(2, b"g", &mut graph);
    field_bytes(5, &w, &mut graph);
    field_bytes(11, &value_info("x", &[1, 3, 8, 8]), &mut graph);
    field_bytes(12, &value_info("y", &[1, 3, 8, 8]), &mut graph);
    let mut opset = Vec::new();
    field_varint(2, 13, &mut opset);
    let mut model = Vec::new();
    field_varint(1, 8, &mut model);
    field_bytes(7, &graph, &mut model);
    field_bytes(8, &opset, &mut model);
    model
}

#[test]
fn a_model_whose_dims_overflow_is_summarised_and_refused_by_name() {
    let path: PathBuf =
        std::env::temp_dir().join(format!("vigia-huge-dims-{}.onnx", std::process::id()));
    std::fs::write(&path, model_with_huge_initializer()).unwrap();
    let graph = OnnxGraph::open(ModelSource::File(path.clone())).unwrap();
    // 2^120 weights: the count saturates instead of overflowing.
    assert_eq!(graph.summary().parameters, u64::MAX);
    let err = TractEngine::build(&graph, &[1, 3, 8, 8])
        .err()
        .expect("the graph cannot be built")
        .to_string();
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    std::fs::remove_file(&path).ok();
}

#[test]
fn mot_detections_with_frame_numbers_far_apart_are_tracked_without_stepping_every_frame() {
    let text = "1,-1,10,10,50,80,0.9\n2,-1,12,10,50,80,0.9\n8000000000000000,-1,1,1,5,5,0.9\n";
    let rows = parse_mot(text, "t").unwrap();
    assert_eq!(rows[2].frame, 8_000_000_000_000_000);
    let dir = std::env::temp_dir().join(format!("vigia-mot-gap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (det, out) = (dir.join("det.txt"), dir.join("tracks.txt"));
    std::fs::write(&det, text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigia"))
        .args(["track", "--detections"])
        .arg(&det)
        .arg("--save-mot")
        .arg(&out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Stepping through 8e15 empty frames would never end.
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("vigia track --detections hangs on a frame-number gap");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success());
    let tracks = std::fs::read_to_string(&out).unwrap();
    assert!(
        tracks.lines().all(|l| l.split(',').count() == 10),
        "{tracks}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(feature = "serve")]
#[test]
fn request_heads_from_the_fuzzer_are_refused_and_the_server_stays_up() {
    use std::io::{Read, Write};
    use vigia::serve::{PreviewConfig, PreviewServer};
    let server = PreviewServer::start(PreviewConfig {
        addr: "127.0.0.1:0".into(),
        token: Some("t".into()),
        ..PreviewConfig::default()
    })
    .unwrap();
    let status = |head: &[u8]| {
        let mut c = std::net::TcpStream::connect(server.local_addr()).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let _ = c.write_all(head);
        let _ = c.shutdown(std::net::Shutdown::Write);
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf).to_string();
        text.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok())
    };
    for head in [
        &b"GET %"[..],
        b"GET / HTTP/1.1\r\nAuthorization:Bearer\r\n\r\n",
        b"GET /?token=%C3 HTTP/1.1\r\n\r\n",
        b"GET http:// HTTP/1.0\r\n\r\n",
    ] {
        let got = status(head);
        assert!(
            got.is_none_or(|s| (400..500).contains(&s)),
            "{got:?} for {}",
            String::from_utf8_lossy(head)
        );
    }
    assert_eq!(status(b"GET /healthz HTTP/1.1\r\n\r\n"), Some(200));
}

#[test]
fn repeated_frame_and_id_rows_are_scored_without_overflow() {
    // Found by the `mot_text` target: rows repeated for the same (frame, id) made the identity
    // overlap exceed the frames counted, and IDFN/IDFP underflowed.
    let text = "5,3,275.81,215.03,43.96,86.45,0.76,-1,-1,-1\n\
                6,1,487.97,162.92,29.36,74.90,0.72,-1,-1,-1\n\
                5,3,275.81,215.03,43.96,86.45,0.76,-1,-1,-1\n\
                6,1,487.97,162.92,29.36,74.90,0.72,-1,-1,-1\n";
    let rows = parse_mot(text, "t").unwrap();
    let m = evaluate(&rows, &rows, 0.5);
    assert!(m.idfn <= m.num_gt && m.idfp <= m.num_hyp, "{m:?}");
}
