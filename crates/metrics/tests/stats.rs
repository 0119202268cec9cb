//! The paired t-test against scipy.stats.ttest_rel (fixtures from
//! scripts/paired_test_fixture.py).

use crossomics_metrics::stats::paired_t_test;

#[test]
fn paired_t_test_matches_scipy() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/paired_t.json"
    ))
    .unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for case in cases {
        let (a, b) = (floats(&case["a"]), floats(&case["b"]));
        let got = paired_t_test(&a, &b).unwrap();
        let (t, p) = (case["t"].as_f64().unwrap(), case["p"].as_f64().unwrap());
        assert_eq!(got.n, a.len());
        assert!(
            (got.t - t).abs() <= 1e-9 * t.abs().max(1.0),
            "t {} vs {t}",
            got.t
        );
        assert!((got.p_value - p).abs() <= 1e-9, "p {} vs {p}", got.p_value);
        let mean = a.iter().zip(&b).map(|(x, y)| x - y).sum::<f64>() / a.len() as f64;
        assert!((got.mean_difference - mean).abs() < 1e-12);
    }
}
