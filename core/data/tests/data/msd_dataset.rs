//! The Decathlon's `Task01_BrainTumour` layout: cases from `dataset.json` (not a folder glob),
//! 4-D images mapped to our channel order by the `modality` names, labels in the `msd` convention.

use crate::fixtures::msd_task01 as task;
use dsma_data::brats::{check_dataset, discover, load_case, DatasetOptions};
use dsma_data::labels::{region_mask, Region};
use dsma_data::LabelConvention;

/// A 3×2×1 task with one case whose four channels are constant 10, 20, 30, 40 in the order
/// T2w, FLAIR, T1w, t1gd, labels 0..=3 then 3, 1; plus an AppleDouble file a glob would pick up.
#[test]
fn task01_cases_channels_and_regions_follow_dataset_json() {
    let tmp = tempfile::tempdir().unwrap();
    let image = task(tmp.path());
    let opts = DatasetOptions::new(LabelConvention::Msd);
    assert_eq!(
        discover(tmp.path(), &opts).unwrap(),
        std::slice::from_ref(&image)
    );
    let case = load_case(&image, LabelConvention::Msd).unwrap();
    assert_eq!(case.id, "BRATS_001");
    // Our order is FLAIR, T1, T1ce, T2: channels 1, 2, 3, 0 of the file.
    let firsts: Vec<f32> = (0..4).map(|m| case.image[[m, 0, 0, 0]]).collect();
    assert_eq!(firsts, [20.0, 30.0, 40.0, 10.0]);
    // Labels [0, 1, 2, 3, 3, 1] (x fastest): WT = {1,2,3}, TC = {2,3}, ET = {3} by dataset.json.
    let mask = |r| {
        region_mask(case.label.view(), r, case.convention)
            .iter()
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(mask(Region::Wt), [false, true, true, true, true, true]);
    assert_eq!(mask(Region::Tc), [false, false, true, true, true, false]);
    assert_eq!(mask(Region::Et), [false, false, false, true, true, false]);
    assert!(check_dataset(tmp.path(), &opts)
        .unwrap()
        .problems
        .is_empty());
}
