//! `vigia-train detect` end to end on a small dataset made from real photographs (objects pasted
//! at known places on real backgrounds): the loss falls, the export matches burn in vigia's tract
//! engine, and the `vigia` binary decodes it into sane boxes. Plus the dataset readers' errors, the
//! CIoU loss on known boxes and mAP on hand-made cases.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Device, Tensor, TensorData};
use clap::Parser;
use image::RgbImage;
use vigia::BBox;
use vigia_train::common::parity::PARITY_TOLERANCE;
use vigia_train::detect::data::{read_coco, read_yolo, DataYaml, MissingLabels};
use vigia_train::detect::loss::{assign, ciou, level_for, TargetBox};
use vigia_train::detect::metrics::{mean_average_precision, GroundTruth, Prediction};
use vigia_train::detect::model::DetNetConfig;
use vigia_train::detect::run::{detect, DetectArgs};

fn shared_images() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/images");
    if p.join("orange.jpg").is_file() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/data/images is missing");
        None
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigia-detect-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: DetectArgs,
}

fn args(list: &[&str]) -> DetectArgs {
    Wrap::parse_from(std::iter::once("t").chain(list.iter().copied())).args
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

/// A YOLO-txt dataset of 160x128 frames: crops of real photos as backgrounds, with an orange
/// (class 0) and a squirrel (class 1) photo pasted at known places; plus one undecodable image.
fn make_dataset(root: &Path, train: usize, val: usize) -> Vec<(PathBuf, Vec<[f32; 5]>)> {
    let dir = shared_images().unwrap();
    let objects = [
        image::open(dir.join("orange.jpg")).unwrap().to_rgb8(),
        image::open(dir.join("squirrel_cls.jpg")).unwrap().to_rgb8(),
    ];
    let backgrounds: Vec<RgbImage> = ["coffee.png", "astronaut.png", "messi5.jpg", "dog.jpg"]
        .iter()
        .map(|f| image::open(dir.join(f)).unwrap().to_rgb8())
        .collect();
    let mut rng = Lcg(7);
    let (w, h) = (160u32, 128u32);
    let mut written = Vec::new();
    for (split, count) in [("train", train), ("val", val)] {
        std::fs::create_dir_all(root.join("images").join(split)).unwrap();
        std::fs::create_dir_all(root.join("labels").join(split)).unwrap();
        for i in 0..count {
            let bg = &backgrounds[rng.below(backgrounds.len() as u32) as usize];
            let (bx, by) = (
                rng.below(bg.width() - w * 2),
                rng.below(bg.height() - h * 2),
            );
            let crop = image::imageops::crop_imm(bg, bx, by, w * 2, h * 2).to_image();
            let mut frame = image::imageops::resize(&crop, w, h, image::imageops::Triangle);
            let mut labels = Vec::new();
            let n_obj = 1 + rng.below(2);
            let mut taken: Vec<(u32, u32, u32, u32)> = Vec::new();
            for _ in 0..n_obj {
                let class = rng.below(2) as usize;
                let side = 24 + rng.below(28);
                let ow = side;
                let oh = side * 3 / 4 + rng.below(side / 2);
                let (ox, oy) = (rng.below(w - ow), rng.below(h - oh));
                if taken
                    .iter()
                    .any(|&(x, y, a, b)| ox < x + a && x < ox + ow && oy < y + b && y < oy + oh)
                {
                    continue;
                }
                taken.push((ox, oy, ow, oh));
                let obj =
                    image::imageops::resize(&objects[class], ow, oh, image::imageops::Triangle);
                image::imageops::replace(&mut frame, &obj, ox as i64, oy as i64);
                labels.push([
                    class as f32,
                    (ox as f32 + ow as f32 / 2.0) / w as f32,
                    (oy as f32 + oh as f32 / 2.0) / h as f32,
                    ow as f32 / w as f32,
                    oh as f32 / h as f32,
                ]);
            }
            let name = format!("{split}_{i:03}");
            let img = root.join("images").join(split).join(format!("{name}.jpg"));
            frame.save(&img).unwrap();
            let text: String = labels
                .iter()
                .map(|l| format!("{} {:.6} {:.6} {:.6} {:.6}\n", l[0], l[1], l[2], l[3], l[4]))
                .collect();
            std::fs::write(
                root.join("labels").join(split).join(format!("{name}.txt")),
                text,
            )
            .unwrap();
            written.push((img, labels));
        }
    }
    // An image file that does not decode: skipped and counted.
    std::fs::write(root.join("images/train/broken.jpg"), b"not a jpeg").unwrap();
    std::fs::write(root.join("labels/train/broken.txt"), "").unwrap();
    std::fs::write(
        root.join("data.yaml"),
        "# test set\npath: .\ntrain: images/train\nval: images/val\nnames:\n  0: orange\n  1: squirrel\n",
    )
    .unwrap();
    written
}

/// The `vigia` binary of this target folder (built by `cargo test --workspace` / `cargo build`).
fn vigia_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join(format!("vigia{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "vigia", "--bin", "vigia"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the vigia binary failed");
    }
    assert!(bin.is_file(), "no vigia binary at {}", bin.display());
    bin
}

#[test]
fn detector_trains_exports_and_runs_in_vigia() {
    if shared_images().is_none() {
        return;
    }
    let root = tmp("e2e");
    let data = root.join("data");
    let written = make_dataset(&data, 48, 8);
    let out = root.join("run");
    let a = args(&[
        "--data",
        data.join("data.yaml").to_str().unwrap(),
        "--imgsz",
        "128x96",
        "--width",
        "8",
        "--epochs",
        "24",
        "--batch-size",
        "8",
        "--lr",
        "3e-3",
        "--warmup-steps",
        "6",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let r = detect(&a, "test").expect("detect");
    assert_eq!(r.names, ["orange", "squirrel"]);
    assert_eq!(r.images, (48, 8, 1), "one undecodable image skipped");
    let (first, last) = (r.history[0].train_loss, r.history[23].train_loss);
    assert!(last < first * 0.8, "loss {first} -> {last}");
    assert!(r.history.iter().all(|s| s.val_map50.is_finite()));
    assert!(
        r.parity.max_err() < PARITY_TOLERANCE,
        "parity {:?}",
        r.parity
    );
    // The pasted objects are found, by burn and by vigia's detector on the same images (source
    // pixels), with about the same mAP.
    assert!(r.map.map > 0.4, "mAP@0.5 {}", r.map.map);
    let vm = r.vigia_map.as_ref().expect("vigia evaluation");
    assert!(
        (vm.map - r.map.map).abs() < 0.05,
        "vigia {} vs burn {}",
        vm.map,
        r.map.map
    );
    for f in [
        "checkpoint/state.toml",
        "final.bpk",
        "history.csv",
        "curves.png",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let card = std::fs::read_to_string(&r.card).unwrap();
    assert!(card.contains("family = \"yolov8\""), "{card}");
    assert!(card.contains("resize = \"letterbox\""), "{card}");

    // The real `vigia` binary runs the export through its ordinary yolov8 decoder.
    let (img, labels) = &written[48];
    let o = Command::new(vigia_bin())
        .args(["detect", "-q", "--no-cache", "--conf", "0.01", "--model"])
        .arg(&r.onnx)
        .arg(img)
        .output()
        .expect("vigia runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        (line["width"].as_u64(), line["height"].as_u64()),
        (Some(160), Some(128))
    );
    let dets = line["detections"].as_array().unwrap();
    assert!(!dets.is_empty(), "{stdout}");
    for d in dets {
        let b: Vec<f64> = d["box"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            b[0] >= 0.0 && b[1] >= 0.0 && b[2] <= 160.0 && b[3] <= 128.0,
            "{d}"
        );
        assert!(b[2] > b[0] && b[3] > b[1], "{d}");
        let s = d["score"].as_f64().unwrap();
        assert!((0.01..=1.0).contains(&s), "{d}");
        assert!(
            ["orange", "squirrel"].contains(&d["label"].as_str().unwrap()),
            "{d}"
        );
    }
    // The best detection is one of the pasted objects.
    let best = &dets[0];
    let b: Vec<f32> = best["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let pb = BBox::new(b[0], b[1], b[2], b[3]);
    let best_iou = labels
        .iter()
        .map(|l| BBox::from_cxcywh(l[1] * 160.0, l[2] * 128.0, l[3] * 160.0, l[4] * 128.0).iou(&pb))
        .fold(0.0f32, f32::max);
    assert!(
        best_iou > 0.5,
        "vigia's best box {b:?} overlaps no object: IoU {best_iou:.3}"
    );

    // `vigia-train export` takes the detector's checkpoint as well.
    let exported = root.join("again.onnx");
    let p = vigia_train::export::export(
        &vigia_train::export::ExportArgs {
            checkpoint: out.join("checkpoint"),
            best: false,
            out: exported.clone(),
            labels: None,
        },
        "test",
    )
    .expect("export of a detector checkpoint");
    assert!(p.max_abs_err < PARITY_TOLERANCE);
    assert!(std::fs::read_to_string(root.join("again.toml"))
        .unwrap()
        .contains("yolov8"));

    // Resume continues the run; a checkpoint of another network is refused.
    let mut more = a.clone();
    more.epochs = 25;
    more.run.resume = Some(out.join("checkpoint"));
    more.no_vigia_eval = true;
    let r2 = detect(&more, "test").expect("resume");
    assert_eq!(r2.history.len(), 25);
    assert_eq!(r2.history[..24], r.history[..]);
    let mut other = more.clone();
    other.width = 12;
    let e = format!("{:#}", detect(&other, "test").unwrap_err());
    assert!(e.contains("another network"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}

fn yolo_fixture(root: &Path, label: &str, yaml: &str) -> PathBuf {
    for split in ["train", "val"] {
        std::fs::create_dir_all(root.join("images").join(split)).unwrap();
        std::fs::create_dir_all(root.join("labels").join(split)).unwrap();
        RgbImage::new(8, 8)
            .save(root.join("images").join(split).join("a.png"))
            .unwrap();
        std::fs::write(root.join("labels").join(split).join("a.txt"), label).unwrap();
    }
    let y = root.join("data.yaml");
    std::fs::write(&y, yaml).unwrap();
    y
}

#[test]
fn yolo_reader_names_the_file_and_line_of_bad_labels() {
    let yaml = "train: images/train\nval: images/val\nnames: ['person', 'car']\n";
    let ok = tmp("yolo-ok");
    let y = yolo_fixture(&ok, "0 0.5 0.5 0.2 0.4\n\n1 0.25 0.25 0.1 0.1\n", yaml);
    let ds = read_yolo(&y, MissingLabels::Error).unwrap();
    assert_eq!(ds.names, ["person", "car"]);
    assert_eq!(ds.train.len(), 1);
    assert_eq!(ds.train[0].labels.len(), 2);
    assert_eq!(ds.train[0].labels[1].class, 1);
    // The folder holding data.yaml works as well.
    assert_eq!(read_yolo(&ok, MissingLabels::Error).unwrap().val.len(), 1);

    for (label, want) in [
        ("0 0.5 0.5 0.2\n", "expected `class cx cy w h`"),
        (
            "0 0.5 0.5 0.2 0.4\n0 0.5 abc 0.2 0.4\n",
            "`abc` is not a number",
        ),
        ("2 0.5 0.5 0.2 0.4\n", "class 2 is out of range"),
        ("x 0.5 0.5 0.2 0.4\n", "class `x`"),
        ("0 0.9 0.5 0.4 0.4\n", "not a normalised box"),
    ] {
        let d = tmp("yolo-bad");
        let y = yolo_fixture(&d, label, yaml);
        let e = format!("{:#}", read_yolo(&y, MissingLabels::Error).unwrap_err());
        assert!(e.contains(want), "{label:?}: {e}");
        let line = if label.lines().count() == 2 {
            ":2"
        } else {
            ":1"
        };
        assert!(e.contains(&format!("a.txt{line}")), "{label:?}: {e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    // A missing label file is named, or is background when asked.
    std::fs::remove_file(ok.join("labels/val/a.txt")).unwrap();
    let e = format!("{:#}", read_yolo(&y, MissingLabels::Error).unwrap_err());
    assert!(
        e.contains("labels/val/a.txt") && e.contains("missing"),
        "{e}"
    );
    let ds = read_yolo(&y, MissingLabels::Background).unwrap();
    assert!(ds.val[0].labels.is_empty());
    // A missing image folder names it.
    std::fs::remove_dir_all(ok.join("images/val")).unwrap();
    let e = format!("{:#}", read_yolo(&y, MissingLabels::Error).unwrap_err());
    assert!(e.contains("images/val") && e.contains("data.yaml"), "{e}");
    let _ = std::fs::remove_dir_all(&ok);

    let e = read_yolo(Path::new("/nonexistent/data.yaml"), MissingLabels::Error).unwrap_err();
    assert!(format!("{e:#}").contains("/nonexistent/data.yaml"));
}

#[test]
fn data_yaml_forms() {
    let f = Path::new("d.yaml");
    let y = DataYaml::parse(
        "path: ../ds\ntrain: a\nval: b\nnc: 2\nnames:\n  - cat\n  - 'dog # 2'\n",
        f,
    )
    .unwrap();
    assert_eq!(y.names, ["cat", "dog # 2"]);
    assert_eq!(y.path.as_deref(), Some("../ds"));
    let y = DataYaml::parse("train: a\nval: b\nnames: [\"a, b\", c]\n", f).unwrap();
    assert_eq!(y.names, ["a, b", "c"]);
    let e = DataYaml::parse("train: a\nnc: 3\nnames: [a, b]\n", f).unwrap_err();
    assert!(e.to_string().contains("d.yaml") && e.to_string().contains("nc is 3"));
    let e = DataYaml::parse("train: a\nval: b\n", f).unwrap_err();
    assert!(e.to_string().contains("names"));
}

#[test]
fn coco_reader_converts_boxes_and_names_bad_annotations() {
    let d = tmp("coco");
    std::fs::create_dir_all(d.join("annotations")).unwrap();
    for split in ["tr", "va"] {
        std::fs::create_dir_all(d.join(split)).unwrap();
        RgbImage::new(200, 100)
            .save(d.join(split).join("x.png"))
            .unwrap();
    }
    let json = |ann: &str| {
        format!(
            r#"{{"images":[{{"id":7,"file_name":"x.png","width":200,"height":100}}],
                "annotations":[{ann}],
                "categories":[{{"id":3,"name":"car"}},{{"id":1,"name":"person"}}]}}"#
        )
    };
    let good = r#"{"id":1,"image_id":7,"category_id":3,"bbox":[20,10,40,50],"iscrowd":0},
                  {"id":2,"image_id":7,"category_id":1,"bbox":[0,0,10,10],"iscrowd":1}"#;
    std::fs::write(d.join("annotations/instances_tr.json"), json(good)).unwrap();
    std::fs::write(d.join("annotations/instances_va.json"), json(good)).unwrap();
    let ds = read_coco(&d, "tr", "va").unwrap();
    // Categories sorted by id: person (1) = 0, car (3) = 1; the crowd box is skipped.
    assert_eq!(ds.names, ["person", "car"]);
    assert_eq!(ds.train[0].labels.len(), 1);
    let l = ds.train[0].labels[0];
    assert_eq!(l.class, 1);
    let want = [0.2, 0.35, 0.2, 0.5];
    for (a, b) in l.cxcywh.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{:?}", l.cxcywh);
    }
    let bad = r#"{"id":9,"image_id":7,"category_id":5,"bbox":[20,10,40,50]}"#;
    std::fs::write(d.join("annotations/instances_va.json"), json(bad)).unwrap();
    let e = format!("{:#}", read_coco(&d, "tr", "va").unwrap_err());
    assert!(
        e.contains("instances_va.json") && e.contains("category_id 5"),
        "{e}"
    );
    let e = format!("{:#}", read_coco(&d, "tr", "nope").unwrap_err());
    assert!(e.contains("instances_nope.json"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

fn boxes(v: &[[f32; 4]]) -> Tensor<2> {
    let flat: Vec<f32> = v.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [v.len(), 4]), &Device::flex())
}

fn values(t: Tensor<1>) -> Vec<f32> {
    t.into_data_as::<f32>().as_slice::<f32>().unwrap().to_vec()
}

#[test]
fn ciou_of_known_boxes() {
    let pred = boxes(&[
        [50.0, 50.0, 20.0, 40.0], // identical
        [50.0, 50.0, 20.0, 20.0], // shifted right by 10: IoU 1/3, d^2 = 100, c^2 = 30^2 + 20^2
        [10.0, 10.0, 4.0, 4.0],   // disjoint, same shape
        [50.0, 50.0, 10.0, 40.0], // same centre, other aspect
    ]);
    let target = boxes(&[
        [50.0, 50.0, 20.0, 40.0],
        [60.0, 50.0, 20.0, 20.0],
        [20.0, 10.0, 4.0, 4.0],
        [50.0, 50.0, 40.0, 10.0],
    ]);
    let (c, iou) = ciou(pred, target);
    let (c, iou) = (values(c), values(iou));
    assert!((c[0] - 1.0).abs() < 1e-5 && (iou[0] - 1.0).abs() < 1e-5);
    assert!((iou[1] - 1.0 / 3.0).abs() < 1e-5);
    assert!(
        (c[1] - (1.0 / 3.0 - 100.0 / 1300.0)).abs() < 1e-5,
        "{}",
        c[1]
    );
    // Disjoint: IoU 0, d^2 = 100, enclosing box 14 x 4.
    assert_eq!(iou[2], 0.0);
    assert!(
        (c[2] + 100.0 / (14.0f32 * 14.0 + 16.0)).abs() < 1e-5,
        "{}",
        c[2]
    );
    // Same centre: IoU = 100 / 700; v = 4/pi^2 (atan 4 - atan 1/4)^2; alpha = v / (v - IoU + 1).
    let i3 = 100.0f32 / 700.0;
    let v = 4.0 / std::f32::consts::PI.powi(2) * (4f32.atan() - 0.25f32.atan()).powi(2);
    let want = i3 - v * v / (v - i3 + 1.0);
    assert!((iou[3] - i3).abs() < 1e-5);
    assert!((c[3] - want).abs() < 1e-5, "{} vs {want}", c[3]);
}

#[test]
fn assignment_takes_the_centre_cell_and_two_neighbours_on_the_level_of_the_box_size() {
    let net = DetNetConfig {
        width: 128,
        height: 96,
        classes: 1,
        base: 8,
    };
    assert_eq!(
        (
            level_for(30.0, 64.0),
            level_for(65.0, 20.0),
            level_for(10.0, 200.0)
        ),
        (0, 1, 2)
    );
    // Centre (21, 11) on stride 8: cell (2, 1), nearer the right and upper neighbours.
    let t = TargetBox {
        class: 0,
        cx: 21.0,
        cy: 11.0,
        w: 10.0,
        h: 20.0,
    };
    let a = assign(&net, &[vec![], vec![t]]);
    let n = net.cells() as i64;
    let gw = 16;
    let mut cells: Vec<i64> = a.index.iter().map(|i| i - n).collect();
    cells.sort();
    assert_eq!(cells, vec![2, gw + 2, gw + 3], "{:?}", a.index);
    assert!(a.boxes.iter().all(|b| *b == [21.0, 11.0, 10.0, 20.0]));
}

fn b(x1: f32, y1: f32, x2: f32, y2: f32) -> BBox {
    BBox::new(x1, y1, x2, y2)
}

#[test]
fn map_of_hand_made_cases() {
    let gts = vec![
        GroundTruth {
            image: 0,
            class: 0,
            bbox: b(0.0, 0.0, 10.0, 10.0),
        },
        GroundTruth {
            image: 1,
            class: 0,
            bbox: b(20.0, 20.0, 40.0, 40.0),
        },
        GroundTruth {
            image: 1,
            class: 1,
            bbox: b(50.0, 50.0, 60.0, 70.0),
        },
    ];
    let p = |image, class, score, bbox| Prediction {
        image,
        class,
        score,
        bbox,
    };
    let perfect = vec![
        p(0, 0, 0.9, b(0.0, 0.0, 10.0, 10.0)),
        p(1, 0, 0.8, b(21.0, 20.0, 40.0, 41.0)),
        p(1, 1, 0.7, b(50.0, 50.0, 60.0, 70.0)),
    ];
    let r = mean_average_precision(&perfect, &gts, 3, 0.5);
    assert_eq!(r.map, 1.0);
    assert_eq!(r.per_class, vec![Some(1.0), Some(1.0), None]);
    assert_eq!(r.gt_per_class, vec![2, 1, 0]);

    // Class 0 misses its second box: recall stops at 1/2 -> AP 0.5; mAP (0.5 + 1) / 2.
    let miss = vec![perfect[0], perfect[2]];
    let r = mean_average_precision(&miss, &gts, 3, 0.5);
    assert_eq!(r.per_class[0], Some(0.5));
    assert_eq!(r.map, 0.75);

    // A duplicate of a found box and a box in the wrong image are false positives; a box with
    // IoU < 0.5 too. Ranked above the second true positive they lower precision there to 2/4.
    let noisy = vec![
        perfect[0],
        p(0, 0, 0.85, b(0.0, 0.0, 10.0, 10.0)),   // duplicate
        p(0, 0, 0.84, b(20.0, 20.0, 40.0, 40.0)), // wrong image
        perfect[1],
        p(1, 0, 0.1, b(30.0, 30.0, 50.0, 50.0)), // low IoU, ranked last: no cost
        perfect[2],
    ];
    let r = mean_average_precision(&noisy, &gts, 3, 0.5);
    assert!(
        (r.per_class[0].unwrap() - (0.5 * 1.0 + 0.5 * 0.5)).abs() < 1e-12,
        "{r:?}"
    );

    // Nothing predicted: 0.
    assert_eq!(mean_average_precision(&[], &gts, 3, 0.5).map, 0.0);
}

#[test]
fn augmentation_moves_boxes_with_the_pixels_and_is_seeded() {
    use vigia_train::common::rng::Rng;
    use vigia_train::detect::data::{augment_into, Augment, Letterboxed};
    // A white 20x30 block at (70, 20) on black, 128x96.
    let (w, h) = (128usize, 96usize);
    let mut pixels = vec![0u8; 3 * w * h];
    for c in 0..3 {
        for y in 20..50 {
            for x in 70..90 {
                pixels[c * w * h + y * w + x] = 255;
            }
        }
    }
    let item = Letterboxed {
        pixels,
        boxes: vec![TargetBox {
            class: 0,
            cx: 80.0,
            cy: 35.0,
            w: 20.0,
            h: 30.0,
        }],
    };
    let aug = Augment {
        flip: 0.5,
        scale: 0.3,
        color: 0.2,
    };
    let mut flipped = 0;
    for seed in 0..20 {
        let mut out = vec![0f32; 3 * w * h];
        let boxes = augment_into(&item, w, h, &aug, &mut Rng::new(seed), &mut out);
        let mut again = vec![0f32; 3 * w * h];
        let same = augment_into(&item, w, h, &aug, &mut Rng::new(seed), &mut again);
        assert_eq!(
            (&boxes, &out),
            (&same, &again),
            "seed {seed} is not deterministic"
        );
        assert_eq!(boxes.len(), 1, "seed {seed}");
        let b = boxes[0];
        flipped += (b.cx < 64.0) as usize;
        // Inside the box (away from its edges) the block is bright, just outside it is dark.
        let px = |x: f32, y: f32| out[y as usize * w + x as usize];
        assert!(px(b.cx, b.cy) > 0.5, "seed {seed}: {b:?}");
        assert!(
            px(b.cx - b.w / 2.0 + 2.0, b.cy - b.h / 2.0 + 2.0) > 0.5,
            "seed {seed}: {b:?}"
        );
        assert!(
            px(b.cx + b.w / 2.0 - 2.0, b.cy + b.h / 2.0 - 2.0) > 0.5,
            "seed {seed}: {b:?}"
        );
        assert!(px(b.cx - b.w / 2.0 - 2.0, b.cy) < 0.5, "seed {seed}: {b:?}");
        assert!(px(b.cx + b.w / 2.0 + 2.0, b.cy) < 0.5, "seed {seed}: {b:?}");
        assert!(px(b.cx, b.cy - b.h / 2.0 - 2.0) < 0.5, "seed {seed}: {b:?}");
        let ratio = b.w / b.h;
        assert!((ratio - 20.0 / 30.0).abs() < 0.05, "aspect kept: {b:?}");
        assert!(
            (0.65..=1.35).contains(&(b.w / 20.0)),
            "scale within the jitter: {b:?}"
        );
    }
    assert!((4..=16).contains(&flipped), "{flipped} of 20 flipped");
}
