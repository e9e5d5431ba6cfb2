"""The dataset catalog: plain declarative records, one per dataset fetal-bench publishes.

A record says where a dataset lives on the Hub (repo id + pinned revision), where its raw
files come from (official URL, size, checksum), what licence and citation apply, what its
features mean and how it is split. Code that downloads, builds, documents or loads a dataset
reads it from here; nothing about a dataset is hard-coded elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fetal_bench.errors import registry_entry


@dataclass(frozen=True)
class SourceFile:
    """One official raw file, as published by its owners."""

    filename: str
    url: str
    size: int | None = None  # bytes, as published
    md5: str | None = None  # the checksum the publisher lists (Zenodo lists md5)
    sha256: str | None = None  # our own pin, where known
    extract: bool = False  # an archive to unpack after verification
    required: bool = True  # False: a build works without it (e.g. unlabelled test images)
    unwrap: str | None = None  # a top folder the archive may wrap its content in; removed on extraction
    description: str = ""


@dataclass(frozen=True)
class BuildOption:
    """A dataset-specific option of ``fetal-bench datasets build`` (the builder's keyword ``name``).

    ``kind``: ``"flag"`` (a boolean the flag switches on), ``"float"`` or ``"choice"`` (one of
    ``choices``); ``default`` is the builder's default.
    """

    name: str
    flag: str
    kind: str
    help: str
    default: object = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContentPin:
    """The content of one published revision, recognisable offline in any local build.

    ``splits`` maps each labelled split of ``config`` to its content fingerprint
    (:func:`fetal_bench.data.fingerprint.split_fingerprint`: rows, columns and decoded pixels, not
    file bytes); ``dataset`` is their :func:`~fetal_bench.data.fingerprint.combined_fingerprint`.
    Optional unlabelled splits (HC18's ``challenge_test``) are not pinned, so having them or not
    never changes what is recognised. ``rows`` is each split's row count, for messages.
    """

    revision: str
    splits: dict[str, str]
    rows: dict[str, int]
    dataset: str
    config: str = "default"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    description: str
    hub_id: str | None  # None: not published (built locally only)
    revision: str | None  # pinned Hub revision (tag) that tasks and docs use
    license: str  # SPDX id
    citation: str
    homepage: str
    sources: tuple[SourceFile, ...] = ()
    zenodo_record: int | None = None
    configs: tuple[str, ...] = ("default",)
    features: dict[str, str] = field(default_factory=dict)  # column -> meaning
    splits: dict[str, str] = field(default_factory=dict)  # split -> what it holds
    split_rule: str = ""
    split_seed: int | None = None
    task_categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    non_commercial: bool = False
    simulated: bool = False
    manual_download: str = ""  # what to do when the automatic download fails
    build_options: tuple[BuildOption, ...] = ()  # dataset-specific options of its builder
    pins: tuple[ContentPin, ...] = ()  # content of published revisions (see ContentPin)

    def pin(self, revision: str | None = None) -> ContentPin | None:
        """The content pin of ``revision`` (default: the catalog's pinned revision), if any."""
        wanted = revision or self.revision
        return next((p for p in self.pins if p.revision == wanted), None)

    @property
    def is_published(self) -> bool:
        return self.hub_id is not None


_FEATURES_PLANES_COMMON = {
    "id": "unique row id, the source image file name without extension (stable across versions)",
    "image": "the B-mode ultrasound image (PNG bytes, grayscale as published)",
    "label": "the standard plane (ClassLabel)",
    "patient_id": "pseudonymous patient identifier; splits never share a patient",
}

HC18 = DatasetInfo(
    name="hc18",
    title="HC18: automated measurement of fetal head circumference",
    description=(
        "2D ultrasound images of the standard plane used to measure fetal head circumference, "
        "with a filled head mask derived from the sonographer's ellipse annotation, the pixel "
        "size and the reference head circumference. Radboud University Medical Center, Nijmegen."
    ),
    hub_id="fetal-bench/hc18",
    revision="v1.0",
    license="cc-by-4.0",
    citation=(
        "@article{vandenheuvel2018hc18,\n"
        "  title={Automated measurement of fetal head circumference using 2D ultrasound images},\n"
        "  author={van den Heuvel, Thomas L. A. and de Bruijn, Dagmar and de Korte, Chris L. and "
        "van Ginneken, Bram},\n"
        "  journal={PLoS ONE}, volume={13}, number={8}, pages={e0200412}, year={2018},\n"
        "  doi={10.1371/journal.pone.0200412}\n}"
    ),
    homepage="https://hc18.grand-challenge.org/",
    zenodo_record=1327317,
    sources=(
        # Sizes and md5s as the Zenodo record lists them; files without a pin are verified
        # against the record's API at download time.
        SourceFile("training_set.zip", "https://zenodo.org/records/1327317/files/training_set.zip",
                   size=132_926_838, md5="00eb8198b9a505b2b3a6dfc740382497",
                   extract=True, description="999 training images and their ellipse annotations"),
        SourceFile("training_set_pixel_size_and_HC.csv",
                   "https://zenodo.org/records/1327317/files/training_set_pixel_size_and_HC.csv",
                   size=33_688, md5="c0761518fece2bd2d2ad4218f2cd9777",
                   description="pixel size (mm) and reference head circumference (mm) per image"),
        SourceFile("test_set.zip", "https://zenodo.org/records/1327317/files/test_set.zip",
                   size=43_518_463, md5="8402af5d137ef40a2888c1011ef3fe7e",
                   extract=True, required=False, description="335 challenge test images (labels hidden)"),
        SourceFile("test_set_pixel_size.csv",
                   "https://zenodo.org/records/1327317/files/test_set_pixel_size.csv",
                   size=9_096, md5="8476dc198cc6542f26c57e87faeee033",
                   required=False, description="pixel size (mm) of the challenge test images"),
    ),
    features={
        "id": "unique row id, the source file name without extension (e.g. 012_2HC)",
        "image": "8-bit grayscale ultrasound image of the head standard plane",
        "mask": "filled head mask (0 background, 1 head), from the ellipse outline annotation; null in challenge_test",
        "subject_id": "the NNN prefix of the file name: an exam, not a woman (HC18 has 1,334 images from 551 "
                      "women and publishes no woman id); all images of an exam are in one split",
        "pixel_size_mm": "physical size of one pixel in millimetres",
        "head_circumference_mm": "reference head circumference in millimetres; null in challenge_test",
    },
    splits={
        "train": "about 70% of the labelled exams",
        "validation": "about 10% of the labelled exams",
        "test": "about 20% of the labelled exams",
        "challenge_test": "the 335 official test images, no labels (only when test_set.zip is present)",
    },
    split_rule=(
        "Exam-disjoint: each exam (file-name prefix NNN, the subject_id column) goes to train/validation/test "
        "with probability 0.7/0.1/0.2 from sha256('<seed>:<NNN>'), so an exam's split never depends on which "
        "other files are present. HC18 does not identify women (551 women, 1,334 images), so two exams of one "
        "woman may fall in different splits."
    ),
    split_seed=2018,
    # Made from the complete official training_set.zip + CSV (999 labelled images); how to
    # re-check: docs/datasets.md, "Pinned content". challenge_test is optional, so not pinned.
    pins=(ContentPin(
        revision="v1.0",
        splits={"train": "3cd97a92c3e7a6d42bb14a276ae4d37b5fabc9ea024449452079675cba12e661",
                "validation": "c50e2aeb7d09b39b714ef7888a167324d81eff6de923a7659c764f1868cd060d",
                "test": "a56c267dbeed93273e2570e6a9db3fce58898e08d96b03b89007d61c97b0168d"},
        rows={"train": 676, "validation": 123, "test": 200},
        dataset="659769d6230e13c287a7aad2c11ef9db0dfe8a960be58380e3f975c3036d04d0",
    ),),
    task_categories=("image-segmentation",),
    tags=("medical", "ultrasound", "fetal", "obstetrics", "biometry"),
    manual_download=(
        "Open https://zenodo.org/records/1327317 in a browser, download training_set.zip, "
        "training_set_pixel_size_and_HC.csv (and optionally test_set.zip, test_set_pixel_size.csv) "
        "into DIR, unzip the archives there, then run `fetal-bench datasets build hc18 --raw DIR --out OUT`."
    ),
)

# The same 999 labelled images, split by head size instead of by hash: a protocol, not a release
# (no Hub repository). Built from the official raw files by `fetal-bench datasets build
# hc18-size-shift`; the pin makes any such build recognisable offline as revision v1.
HC18_SIZE_SHIFT = replace(
    HC18,
    name="hc18-size-shift",
    title="HC18, split by head size: train on heads up to 198.7 mm, test on larger ones",
    description=HC18.description + " Re-split so that the test exams hold every head larger than any training head.",
    hub_id=None,
    revision="v1",
    sources=tuple(s for s in HC18.sources if s.required),
    splits={
        "train": "the v1.0 train exams among exams 000-599 (485 images, reference HC 44.3-198.7 mm)",
        "validation": "the other exams among 000-599 (v1.0 validation and test exams; 256 images)",
        "test": "exams 600-805 (258 images, reference HC 159.9-346.4 mm; 49 at 300 mm or more)",
    },
    split_rule=(
        "Size shift: exam NNN (the subject_id column) goes to test when NNN >= 600, else to train when the hc18 v1.0 "
        "rule puts it in train (sha256('2018:<NNN>') below 0.7), else to validation. The official CSV lists the "
        "exams roughly in order of head size, so the cut is a head-size cut that never splits an exam: exams 000-599 "
        "hold reference HCs of 44.3-198.7 mm, exams 600-805 159.9-346.4 mm, and every head above 198.7 mm is a "
        "test head. Exam-disjoint; HC18 identifies no woman."
    ),
    pins=(ContentPin(
        revision="v1",
        splits={"train": "ba7cde59621a49eb0351fe918d1355c2a9750208a9286080320a8c395c48bbcb",
                "validation": "1aa4c901ab0f37fd1d5d1cb711a5e0a5d637751a86cec87dd2b7b5e80ff0b974",
                "test": "c8eaaeaec8aab8265084b18527c0edb09fc02a0c8c910cf93509a62bd7b57c27"},
        rows={"train": 485, "validation": 256, "test": 258},
        dataset="a6c8cb7c48734544ed55dfc2135a6757a1fd89085fb8dc549033c857129846b7",
    ),),
    manual_download=HC18.manual_download.replace("datasets build hc18 ", "datasets build hc18-size-shift "),
)

FETAL_PLANES_ES = DatasetInfo(
    name="fetal-planes-es",
    title="FETAL_PLANES_DB: common maternal-fetal ultrasound planes (Spain)",
    description=(
        "12,400 routinely acquired maternal-fetal screening images from two hospitals in Barcelona "
        "(several operators and machines), labelled by an expert clinician into six classes: "
        "fetal abdomen, brain, femur, thorax, maternal cervix and other; brain images further "
        "labelled by brain plane."
    ),
    hub_id="fetal-bench/fetal-planes-es",
    revision="v1.0",
    license="cc-by-4.0",
    citation=(
        "@article{burgosartizzu2020fetalplanes,\n"
        "  title={Evaluation of deep convolutional neural networks for automatic classification of "
        "common maternal fetal ultrasound planes},\n"
        "  author={Burgos-Artizzu, Xavier P. and Coronado-Guti{\\'e}rrez, David and "
        "Valenzuela-Alcaraz, Brenda and others},\n"
        "  journal={Scientific Reports}, volume={10}, pages={10200}, year={2020},\n"
        "  doi={10.1038/s41598-020-67076-5}\n}"
    ),
    homepage="https://zenodo.org/records/3904280",
    zenodo_record=3904280,
    sources=(
        SourceFile("FETAL_PLANES_ZENODO.zip",
                   "https://zenodo.org/records/3904280/files/FETAL_PLANES_ZENODO.zip",
                   size=2_088_522_169, md5="2a5fcc2cefb789bcc0f6c1f73e0ea43f",
                   extract=True,
                   description="Images/<Image_name>.png and FETAL_PLANES_DB_data.csv (+ .xlsx)"),
    ),
    features={
        **_FEATURES_PLANES_COMMON,
        "brain_plane": "brain sub-plane (Trans-thalamic, Trans-cerebellum, Trans-ventricular, Other, Not A Brain)",
        "operator": "sonographer (Op. 1-3, Other)",
        "us_machine": "ultrasound machine (Voluson E6, Voluson S10, Aloka, Other)",
    },
    splits={
        "train": "official Train=1 rows, less the validation patients",
        "validation": "about 10% of the official Train=1 patients",
        "test": "official Train=0 rows (5,271 images)",
    },
    split_rule=(
        "test = the official Train=0 rows; the official Train=1 patients are divided into train "
        "(about 90%) and validation (about 10%) by sha256('<seed>:<patient_id>'). Patient-disjoint."
    ),
    split_seed=2020,
    task_categories=("image-classification",),
    tags=("medical", "ultrasound", "fetal", "obstetrics", "standard-planes"),
    manual_download=(
        "Open https://zenodo.org/records/3904280 in a browser, download FETAL_PLANES_ZENODO.zip into "
        "DIR and unzip it there (it holds Images/ and FETAL_PLANES_DB_data.csv), then run "
        "`fetal-bench datasets build fetal-planes-es --raw DIR --out OUT`."
    ),
)

FETAL_PLANES_AFRICA = DatasetInfo(
    name="fetal-planes-africa",
    title="African fetal standard planes (Algeria, Egypt, Ghana, Malawi, Uganda)",
    description=(
        "450 fetal ultrasound images of four standard planes (abdomen, brain, femur, thorax) "
        "acquired in five African countries, published to study how plane classifiers trained in "
        "high-income countries transfer to low-resource settings."
    ),
    hub_id="fetal-bench/fetal-planes-africa",
    revision="v1.0",
    license="cc-by-4.0",
    citation=(
        "@article{sendrabalcells2023africa,\n"
        "  title={Generalisability of fetal ultrasound deep learning models to low-resource imaging "
        "settings in five African countries},\n"
        "  author={Sendra-Balcells, Carla and Campello, V{\\'i}ctor M. and Torrents-Barrena, Jordina "
        "and others},\n"
        "  journal={Scientific Reports}, volume={13}, pages={2728}, year={2023},\n"
        "  doi={10.1038/s41598-023-29490-3}\n}"
    ),
    homepage="https://zenodo.org/records/7540448",
    zenodo_record=7540448,
    sources=(
        SourceFile("Zenodo_dataset.tar.xz",
                   "https://zenodo.org/records/7540448/files/Zenodo_dataset.tar.xz",
                   # No published size/md5 found to pin: verified against the Zenodo record API.
                   extract=True, unwrap="Zenodo_dataset",
                   description="<Center>/<Filename>.png images and African_planes_database.csv"),
    ),
    features={
        **_FEATURES_PLANES_COMMON,
        "patient_id": "country + patient number (patient numbers restart in each country)",
        "country": "acquisition country (Algeria, Egypt, Ghana, Malawi, Uganda)",
    },
    splits={"train": "official Train=1 rows (217)", "test": "official Train=0 rows (233)"},
    split_rule="The official split: train = Train=1, test = Train=0.",
    # Made from the complete official archive (450 images, 450 CSV rows); docs/datasets.md.
    pins=(ContentPin(
        revision="v1.0",
        splits={"train": "9ab06d5e9b16ce56e8f84704677a403cf1344caa8c1dc50e8f104247d3657b25",
                "test": "ad134331b9ba4056a77aeec85edbb8442c2f6d044c743d6c3eb82e1587ad94a2"},
        rows={"train": 217, "test": 233},
        dataset="8c995c6e4c140ea93b2d1ee6ceac0fea111b5ced0b72c754b62f26aeba62548a",
    ),),
    task_categories=("image-classification",),
    tags=("medical", "ultrasound", "fetal", "obstetrics", "standard-planes", "africa", "domain-shift"),
    manual_download=(
        "Open https://zenodo.org/records/7540448 in a browser, download Zenodo_dataset.tar.xz into DIR "
        "and extract it there, then run `fetal-bench datasets build fetal-planes-africa --raw DIR --out OUT`."
    ),
)

ACOUSLIC_IQA = DatasetInfo(
    name="acouslic-iqa",
    title="ACOUSLIC-AI blind-sweep frames for image-quality assessment",
    description=(
        "Frames of the ACOUSLIC-AI training set (MICCAI 2024 challenge; Radboud University Medical "
        "Center): 300 cases of six blind obstetric ultrasound sweeps (140 frames each, 744x562 "
        "pixels of 0.28 mm) acquired in low-resource settings, with the fetal abdomen segmented on "
        "the frames judged usable for measuring the abdominal circumference (optimal or suboptimal "
        "plane). Each frame is a row: "
        "`label` says whether it shows a measurable abdomen (usable) or not, the image-quality "
        "assessment task of He et al. (2025)."
    ),
    hub_id="fetal-bench/acouslic-iqa",
    revision="v1.0",
    license="cc-by-nc-sa-4.0",
    citation=(
        "@dataset{sappia2024acouslic,\n"
        "  title={{ACOUSLIC-AI} challenge: training and development dataset (v1.1)},\n"
        "  author={Sappia, M. Sof{\\'i}a and Murphy, Keelin and others},\n"
        "  publisher={Zenodo}, year={2024}, doi={10.5281/zenodo.12697994}\n}\n"
        "@misc{he2025iqa,\n"
        "  title={Advancing Fetal Ultrasound Image Quality Assessment in Low-Resource Settings},\n"
        "  author={He, Dongli and Wang, Hu and Yaqub, Mohammad},\n"
        "  year={2025}, eprint={2507.22802}, archivePrefix={arXiv}\n}"
    ),
    homepage="https://acouslic-ai.grand-challenge.org/",
    zenodo_record=12697994,
    sources=(
        # No published size/md5 found to pin: verified against the Zenodo record API (v1.1).
        SourceFile("acouslic-ai-train-set.zip",
                   "https://zenodo.org/records/12697994/files/acouslic-ai-train-set.zip?download=1",
                   extract=True, unwrap="acouslic-ai-train-set",
                   description="images/stacked_fetal_ultrasound/<uuid>.mha, masks/stacked_fetal_abdomen/<uuid>.mha, "
                               "circumferences/fetal_abdominal_circumferences_per_sweep.csv"),
    ),
    features={
        "id": "unique row id: <case uuid>-s<sweep>-f<frame>, from the source file name (stable across versions)",
        "image": "one 8-bit grayscale blind-sweep frame (744x562 in the official release), PNG",
        "label": "usable (1) when the frame's abdomen mask has any foreground (optimal or suboptimal plane), else unusable (0)",
        "plane_quality": "the 3-way annotation: none (no mask), optimal (mask value 1) or suboptimal (mask value 2)",
        "mask": "the frame's fetal abdomen mask as published: 0 background, 1 optimal plane, 2 suboptimal plane",
        "case_id": "the case uuid (one .mha stack of six sweeps); the unit of the split and of the bootstrap",
        "subject_id": "the pregnant woman the case belongs to (some have two cases)",
        "sweep": "sweep number 1-6 within the case",
        "frame": "frame number 0-139 within the sweep",
        "pixel_size_mm": "physical size of one pixel in millimetres (0.28 in the official release)",
        "sweep_ac_mm": "the sweep's reference abdominal circumference in mm; null for a sweep without one",
    },
    splits={
        "train": "about 70% of the subjects' cases",
        "validation": "about 10% of the subjects' cases",
        "test": "about 20% of the subjects' cases",
    },
    split_rule=(
        "Case-level and subject-disjoint: every case (all six sweeps, all frames) goes to one split, and "
        "all cases of a subject to the same one: train/validation/test with probability 0.7/0.1/0.2 "
        "from sha256('<seed>:<subject_id>'). Sweeps without a reference abdominal circumference are "
        "left out, as in He et al. (2025). `--split-rule paper` reproduces the paper's own split instead."
    ),
    split_seed=2024,
    task_categories=("image-classification", "image-segmentation"),
    tags=("medical", "ultrasound", "fetal", "obstetrics", "blind-sweep", "image-quality", "low-resource"),
    non_commercial=True,
    build_options=(
        BuildOption("split_rule", "--split-rule", "choice",
                    "subject: subject-disjoint hash split (default); paper: He et al.'s seeded case permutation.",
                    default="subject", choices=("subject", "paper")),
        BuildOption("keep_unmeasured_sweeps", "--keep-unmeasured-sweeps", "flag",
                    "Keep sweeps without a reference abdominal circumference (dropped by default, as in the paper).",
                    default=False),
        BuildOption("negative_keep_fraction", "--negative-keep-fraction", "float",
                    "Keep this fraction (0-1] of the train split's unusable frames (seeded; validation/test keep all).",
                    default=1.0),
    ),
    manual_download=(
        "Open https://zenodo.org/records/12697994 in a browser, download acouslic-ai-train-set.zip (v1.1) "
        "into DIR and unzip it there (it holds images/, masks/ and circumferences/), then run "
        "`fetal-bench datasets build acouslic-iqa --raw DIR --out OUT`."
    ),
)

PHANTOM = DatasetInfo(
    name="phantom",
    title="fetal-bench phantom: simulated ultrasound-like images (NOT clinical data)",
    description=(
        "Small, deterministic, simulated ultrasound-like images generated in-process by fetal-bench: "
        "speckle, a fan-shaped field of view, acoustic shadowing and bright skull-like ellipses. "
        "It exists so that every command runs anywhere without a download. It is not clinical data "
        "and no clinical conclusion may be drawn from it."
    ),
    hub_id=None,
    # Not published: the "revision" is the generator's version. Changing what
    # fetal_bench.data.phantom generates means bumping it (and the tasks that pin it).
    revision="generator-v1",
    license="apache-2.0",
    citation="",
    homepage="https://github.com/fetal-bench/fetal-bench",
    configs=("planes", "head"),
    features={
        "id": "unique row id",
        "image": "simulated grayscale ultrasound-like image",
        "label": "(planes) simulated plane class",
        "patient_id": "(planes) simulated patient; splits never share one",
        "site": "(planes) simulated acquisition site, a grouping variable",
        "mask": "(head) filled head mask, 0/1",
        "subject_id": "(head) simulated subject",
        "pixel_size_mm": "(head) simulated pixel size in millimetres",
        "head_circumference_mm": "(head) exact circumference of the simulated head ellipse",
    },
    splits={"train": "simulated", "validation": "simulated", "test": "simulated"},
    split_rule="Generated per split from a fixed seed; patients/subjects are unique to a split.",
    split_seed=0,
    task_categories=("image-classification", "image-segmentation"),
    tags=("synthetic", "simulated", "ultrasound", "testing"),
    simulated=True,
)

FU_LORA_SYNTHETIC = DatasetInfo(
    name="fu-lora-synthetic",
    title="FU-LoRA: the authors' synthetic fetal ultrasound planes (5,000 images)",
    description=(
        "The 5,000 synthetic images (1,000 per class: abdomen, brain, femur, thorax, other) that the FU-LoRA "
        "paper's hybrid classifiers were trained with, generated by the authors' Stable Diffusion 1.5 LoRAs and "
        "published on Zenodo. Built from a local copy of the record: the images named in the authors' "
        "synthetic_train_5000.csv (github.com/13204942/FU-LoRA at 9b84b6f, shipped with fetal-bench), found "
        "anywhere under the raw directory. Synthetic data, not clinical images. The record's licence and file "
        "layout could not be checked offline: read them on the record before use."
    ),
    hub_id=None,
    revision="zenodo-13228158-v1",
    license="unknown",
    citation=(
        "@inproceedings{wang2024fulora,\n"
        "  title={Generative Diffusion Model Bootstraps Zero-shot Classification of Fetal Ultrasound Images "
        "In Underrepresented African Populations},\n"
        "  author={Wang, Fangyijie and Whelan, Kevin and Silvestre, Gu{\\'e}nol{\\'e} and Curran, Kathleen M.},\n"
        "  booktitle={MICCAI Workshop PIPPI}, year={2024}, eprint={2407.20072}, archivePrefix={arXiv}\n}"
    ),
    homepage="https://zenodo.org/records/13228158",
    zenodo_record=13228158,
    features={"id": "the authors' file name without .png (stable)", "image": "the generated image as published",
              "label": "the class it was generated for (FETAL_PLANES_DB plane names)",
              "generator": "who generated it"},
    splits={"train": "the 5,000 images of synthetic_train_5000.csv"},
    split_rule="One split: every listed image is a training image (the set is only used for training).",
    task_categories=("image-classification",),
    tags=("synthetic", "ultrasound", "fetal", "standard-planes", "fu-lora"),
    manual_download=(
        "Open https://zenodo.org/records/13228158 in a browser, download its files into DIR and extract them "
        "there, then run `fetal-bench datasets build fu-lora-synthetic --raw DIR --out OUT`."
    ),
)

CATALOG: dict[str, DatasetInfo] = {
    info.name: info for info in (HC18, HC18_SIZE_SHIFT, FETAL_PLANES_ES, FETAL_PLANES_AFRICA, ACOUSLIC_IQA, PHANTOM, FU_LORA_SYNTHETIC)
}


def list_datasets() -> list[DatasetInfo]:
    return list(CATALOG.values())


def get_dataset_info(name: str) -> DatasetInfo:
    return registry_entry(CATALOG, name, "dataset", known=sorted(CATALOG), listed_by="fetal-bench datasets list")
