//! `key=value` overrides (proptest): any dotted path of identifiers gets the value set, integers
//! and floats come back as themselves, list items are addressed by index, and malformed overrides
//! are errors, never panics.

use dsma_train::experiment::apply_overrides;
use proptest::prelude::*;
use serde_json::{json, Value};

fn key() -> impl Strategy<Value = Vec<String>> {
    // `x`-prefixed, so no path runs into the document's own `rows` list or `train` number.
    proptest::collection::vec("x[a-z0-9_]{0,7}", 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // Fixed seed and no regression files: the same inputs on every run and machine.
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_d5a1),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn a_dotted_path_gets_an_integer_or_float(path in key(), n in any::<i64>(), x in -1e6f64..1e6) {
        let doc = json!({"train": {"stage1": {"epochs": 3}}, "rows": [{"label": "a"}]});
        let k = path.join(".");
        let out = apply_overrides(doc.clone(), &[format!("{k}={n}")]).expect("integer override");
        prop_assert_eq!(out.pointer(&format!("/{}", path.join("/"))), Some(&json!(n)));
        let out = apply_overrides(doc, &[format!("{k}={x:?}")]).expect("float override");
        let got = out.pointer(&format!("/{}", path.join("/"))).and_then(Value::as_f64);
        prop_assert_eq!(got, Some(x));
    }

    #[test]
    fn list_items_are_addressed_by_index(label in "[a-z]{1,8}") {
        let doc = json!({"rows": [{"label": "a"}, {"label": "b"}]});
        let out = apply_overrides(doc, &[format!("rows.1.label={label}")]).expect("override");
        prop_assert_eq!(&out["rows"][1]["label"], &json!(label));
        prop_assert_eq!(&out["rows"][0]["label"], &json!("a"));
    }

    #[test]
    fn any_text_is_an_error_or_an_override_never_a_panic(o in ".{0,40}") {
        let doc = json!({"rows": [{"label": "a"}], "train": 5});
        let _ = apply_overrides(doc, &[o]);
    }
}
