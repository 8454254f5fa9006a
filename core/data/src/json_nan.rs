//! JSON has no NaN: serde_json writes NaN as `null`. These read `null` back as NaN, for fields
//! that may hold NaN (undefined metrics, scores that were not computed, a diverged loss).

use serde::{Deserialize, Deserializer};

/// An `f64` that may be `null` (NaN).
pub fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A list of `f64` whose entries may be `null` (NaN).
pub fn nans_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let v = Vec::<Option<f64>>::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

/// An optional array of four `f64` whose entries may be `null` (NaN).
pub fn nan4_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[f64; 4]>, D::Error> {
    let v = Option::<[Option<f64>; 4]>::deserialize(d)?;
    Ok(v.map(|a| a.map(|x| x.unwrap_or(f64::NAN))))
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "super::nan_if_null")]
        one: f64,
        #[serde(deserialize_with = "super::nans_if_null")]
        many: Vec<f64>,
        #[serde(default, deserialize_with = "super::nan4_if_null")]
        four: Option<[f64; 4]>,
    }

    #[test]
    fn nan_survives_a_json_round_trip() {
        let h = Holder {
            one: f64::NAN,
            many: vec![0.5, f64::NAN],
            four: Some([1.0, f64::NAN, 2.0, 3.0]),
        };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(
            json,
            r#"{"one":null,"many":[0.5,null],"four":[1.0,null,2.0,3.0]}"#
        );
        let back: Holder = serde_json::from_str(&json).unwrap();
        assert!(back.one.is_nan());
        assert_eq!(back.many[0], 0.5);
        assert!(back.many[1].is_nan());
        let four = back.four.unwrap();
        assert!(four[1].is_nan() && four[3] == 3.0);
        let none: Holder = serde_json::from_str(r#"{"one":1.5,"many":[],"four":null}"#).unwrap();
        assert!(none.one == 1.5 && none.many.is_empty() && none.four.is_none());
    }
}
