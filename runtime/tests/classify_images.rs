//! Classification with the bundled pretrained EfficientNet-Lite0.

mod common;

use vigia::classifier::Classifier;
use vigia::model::Task;
use vigia::resolve::{load_model, LoadOptions};
use vigia::source::images::load_rgb;

#[test]
fn efficientnet_lite0_top1_on_real_photos() {
    let Some(shared) = common::shared() else {
        return;
    };
    let card = common::models_dir().join("efficientnet-lite0-224.toml");
    let model = load_model(
        Some(card.to_str().unwrap()),
        Some(Task::Classify),
        &LoadOptions::default(),
    )
    .unwrap();
    let mut cls = Classifier::new(model);
    for (image, expected, min_p) in [
        ("squirrel_cls.jpg", "fox squirrel", 0.4),
        ("coffee.png", "espresso", 0.8),
        ("orange.jpg", "orange", 0.6),
    ] {
        let img = load_rgb(&shared.join("data/images").join(image)).unwrap();
        let top = cls.classify(&img, 5).unwrap();
        assert_eq!(top.len(), 5);
        assert!(
            top[0].label.split(',').next().unwrap().trim() == expected,
            "{image}: top-1 {:?}",
            top[0]
        );
        assert!(top[0].score >= min_p, "{image}: {:?}", top[0]);
        // Probabilities are sorted and sum to at most 1.
        assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(top.iter().map(|c| c.score).sum::<f32>() <= 1.0001);
    }
}
