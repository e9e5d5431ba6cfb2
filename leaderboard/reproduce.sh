#!/usr/bin/env bash
# Regenerate the committed baselines: every file in leaderboard/results/ and the predictions in
# leaderboard/predictions/ that tests/test_real_data.py scores again. CPU only, seeded and
# epoch-based (never wall-clock), so the numbers do not depend on how busy the machine is.
#
#   RAW=../shared/data leaderboard/reproduce.sh [STEP ...]     # run from the repository root
#
# STEP: data, hc18-unet, hc18-size-shift, sononet16-zero-shot, sononet16-africa-ft, resnet18-africa-scratch,
# sononet16-es100-probe, sononet16-es100-ft-cv, sononet16-es100-ft, resnet18-es100-scratch-cv,
# resnet18-es100-scratch (default: all of them, in that order). Each result records
# `leaderboard/reproduce.sh STEP`. The es100 steps train on the 100 Spanish images that the shared
# fetal_planes_db/ holds (a partial, local build of fetal-planes-es) and choose their settings by
# cross-validation on those images only (leaderboard/spanish_cv.py; records in leaderboard/cv/);
# a *-cv step must run before the step it names, whose settings it writes.
#
# RAW holds the official files: fetal_planes_db/ (FETAL_PLANES_DB_data.csv and Images/, complete or
# not: the es100 steps expect the 100 images of the FU-LoRA authors' list), hc18/ (training_set/ and training_set_pixel_size_and_HC.csv from
# Zenodo 1327317), african_planes/ (the extracted Zenodo 7540448 archive: <Center>/<Filename>.png
# and African_planes_database.csv) and sononet16/SonoNet16.npz (github.com/baumgach/SonoNet-weights;
# sha256-checked on load). Builds and training runs go to WORK (default runs/reproduce).
# Wall times, fp32 on two CPU cores: data 30 s (1 min with the size-shift build); hc18-unet training
# 25.8 min on AMX-era cores, 64.6 min on AVX2-only ones (2026-12-06), then about 5 min to calibrate
# and evaluate; hc18-size-shift training about 44 min on AVX2-only cores (485 images); the others
# 5-25 min each. The script prints each step's wall time and the total when it ends.
set -euo pipefail

RAW=${RAW:-${FETAL_BENCH_SHARED_DATA:-../shared/data}}
WORK=${WORK:-runs/reproduce}
RESULTS=leaderboard/results
PREDICTIONS=leaderboard/predictions
# Two threads, as the committed runs: CPU float sums depend on how work is split across threads.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export FETAL_BENCH_OFFLINE=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export FETAL_BENCH_SONONET16=${FETAL_BENCH_SONONET16:-$RAW/sononet16/SonoNet16.npz}
HC18=$WORK/hc18
HC18_SIZE_SHIFT=$WORK/hc18-size-shift
AFRICA=$WORK/fetal-planes-africa
ES100=$WORK/fetal-planes-es-100
CV=leaderboard/cv
mkdir -p "$WORK" "$RESULTS" "$PREDICTIONS" "$CV"

# The African set has no validation split and the train CLI validates on `validation`, so the
# classifiers are trained through the Python API with val_split=None: fixed epochs, final weights.
# Every committed recipe trains in fp32 (mixed_precision "no", unless a step says otherwise), so it
# trains alike on CPUs with and without bf16 units.
train_api() {
    python - "$1" <<'EOF'
import json
import sys

from fetal_bench.training import train

result = train(log=print, progress=False, **{"mixed_precision": "no", **json.loads(sys.argv[1])})
print(f"trained {result.output}: {result.epochs_completed} epochs, {result.steps} steps")
EOF
}

step_data() {
    [ -f "$HC18/build_info.json" ] || fetal-bench datasets build hc18 --raw "$RAW/hc18" --out "$HC18"
    [ -f "$HC18_SIZE_SHIFT/build_info.json" ] || \
        fetal-bench datasets build hc18-size-shift --raw "$RAW/hc18" --out "$HC18_SIZE_SHIFT"
    [ -f "$AFRICA/build_info.json" ] || \
        fetal-bench datasets build fetal-planes-africa --raw "$RAW/african_planes" --out "$AFRICA"
    [ -f "$ES100/build_info.json" ] || \
        fetal-bench datasets build fetal-planes-es --raw "$RAW/fetal_planes_db" --out "$ES100"
}

# The epoch count a *-cv step chose (its record in leaderboard/cv/).
cv_epochs() {
    python -c "import json, sys; print(json.load(open(sys.argv[1]))['chosen']['epochs'])" "$CV/$1.json"
}

# How a description names the CV: es_cv FOLDS.
es_cv() { echo "$1-fold cross-validation on the 100 Spanish images only (stratified by plane, grouped by patient; leaderboard/cv/"; }

step_sononet16_es100_probe() {
    python leaderboard/spanish_cv.py probe --data "$ES100" --weights "$FETAL_BENCH_SONONET16" --eval-data "$AFRICA" \
        --layers adaptation --predictions "$PREDICTIONS/sononet16-es100-probe.csv" --output "$CV/sononet16-es100-probe.json" \
        --work "$WORK/sononet16-es100-probe-cv"
    fetal-bench evaluate --task planes-africa-zero-shot --predictions "$PREDICTIONS/sononet16-es100-probe.csv" \
        --data "$AFRICA" --output "$RESULTS" --name sononet16-es100-probe --training-data real \
        --description "Linear probe on the frozen published SonoNet-16 (its 64 pooled adaptation features, standardised; multinomial logistic regression, 5 outputs incl. Other) trained on the 100 FETAL_PLANES_DB images of the FU-LoRA authors' list (20 per class; a partial local build of fetal-planes-es); C chosen by $(es_cv 5)sononet16-es100-probe.json); no African image seen" \
        --command "leaderboard/reproduce.sh sononet16-es100-probe"
    task_labels sononet16-es100-probe "Linear probe on the frozen published SonoNet-16 (as sononet16-es100-probe; C chosen by $(es_cv 5)sononet16-es100-probe.json)" \
        sononet16-es100-probe
}

# The same probabilities with Other dropped and renormalised (argmax over the task's four planes),
# as sononet16-planes-task-labels: a rule fixed by the task's label set, not chosen on African data.
# task_labels NAME DESCRIPTION STEP
task_labels() {
    python -c "from fetal_bench.evaluation.harness import restrict_to_labels as r; from fetal_bench.tasks import get_task as t; \
r('$PREDICTIONS/$1.csv', '$PREDICTIONS/$1-task-labels.csv', t('planes-africa-zero-shot').labels)"
    fetal-bench evaluate --task planes-africa-zero-shot --predictions "$PREDICTIONS/$1-task-labels.csv" \
        --data "$AFRICA" --output "$RESULTS" --name "$1-task-labels" --training-data real \
        --description "$2, with Other removed and the four planes renormalised (argmax over the task's labels only); no African image seen" \
        --command "leaderboard/reproduce.sh $3"
}

# SonoNet-16 fine-tuning, as sononet16-africa-ft (AdamW 1e-3, batch 32, ultrasound augmentation)
# but on the Spanish images with the protocol's five outputs, and a constant learning rate: the CV
# validates after every epoch of one run, which is then exactly a run of that many epochs.
ES100_FT='{"lr": 0.001, "scheduler": "none"}'

step_sononet16_es100_ft_cv() {
    python leaderboard/spanish_cv.py train-cv --model sononet16 --config "$ES100_FT" --epochs 5 --folds 3 \
        --data "$ES100" --work "$WORK/sononet16-es100-ft-cv" --output "$CV/sononet16-es100-ft.json"
}

step_sononet16_es100_ft() {
    local epochs
    epochs=$(cv_epochs sononet16-es100-ft)
    train_api "{\"model\": \"sononet16\", \"task\": \"planes-africa-zero-shot\", \"data\": \"$ES100\",
        \"train_split\": \"train+validation\", \"val_split\": null, \"exclude_labels\": [\"Maternal cervix\"],
        \"epochs\": $epochs, \"lr\": 0.001, \"scheduler\": \"none\", \"seed\": 0, \"keep\": \"last\", \"patience\": null,
        \"run_name\": \"sononet16-es100-ft\", \"output\": \"$WORK/sononet16-es100-ft\"}"
    fetal-bench evaluate --task planes-africa-zero-shot --model sononet16 --checkpoint "$WORK/sononet16-es100-ft" \
        --data "$AFRICA" --output "$RESULTS" --save-predictions "$PREDICTIONS/sononet16-es100-ft.csv" --training-data real \
        --description "SonoNet-16 from the published weights, new 5-output head (4 planes + Other), fine-tuned $epochs epochs on the 100 FETAL_PLANES_DB images of the FU-LoRA authors' list (a partial local build of fetal-planes-es; AdamW 1e-3 constant, batch 32, ultrasound augmentation); epochs chosen by $(es_cv 3)sononet16-es100-ft.json); no African image seen" \
        --command "leaderboard/reproduce.sh sononet16-es100-ft"
    task_labels sononet16-es100-ft "SonoNet-16 fine-tuned $epochs epochs on the 100 Spanish images (as sononet16-es100-ft; epochs chosen by $(es_cv 3)sononet16-es100-ft.json)" \
        sononet16-es100-ft
}

ES100_SCRATCH='{"image_size": [128, 128], "model_cfg": {"pretrained": false}, "scheduler": "none"}'

step_resnet18_es100_scratch_cv() {
    python leaderboard/spanish_cv.py train-cv --model resnet18 --config "$ES100_SCRATCH" --epochs 15 --folds 3 \
        --data "$ES100" --work "$WORK/resnet18-es100-scratch-cv" --output "$CV/resnet18-es100-scratch.json"
}

step_resnet18_es100_scratch() {
    local epochs
    epochs=$(cv_epochs resnet18-es100-scratch)
    train_api "{\"model\": \"resnet18\", \"task\": \"planes-africa-zero-shot\", \"data\": \"$ES100\",
        \"train_split\": \"train+validation\", \"val_split\": null, \"exclude_labels\": [\"Maternal cervix\"],
        \"epochs\": $epochs, \"image_size\": [128, 128], \"model_cfg\": {\"pretrained\": false}, \"scheduler\": \"none\",
        \"seed\": 0, \"keep\": \"last\", \"patience\": null, \"run_name\": \"resnet18-es100-scratch\",
        \"output\": \"$WORK/resnet18-es100-scratch\"}"
    fetal-bench evaluate --task planes-africa-zero-shot --model resnet18 --checkpoint "$WORK/resnet18-es100-scratch" \
        --data "$AFRICA" --output "$RESULTS" --save-predictions "$PREDICTIONS/resnet18-es100-scratch.csv" --training-data real \
        --description "ResNet-18 from RANDOM initialisation, gray 128x128, 5 outputs (4 planes + Other), $epochs epochs on the 100 FETAL_PLANES_DB images of the FU-LoRA authors' list (a partial local build of fetal-planes-es); epochs chosen by $(es_cv 3)resnet18-es100-scratch.json); no African image seen" \
        --command "leaderboard/reproduce.sh resnet18-es100-scratch"
    task_labels resnet18-es100-scratch "ResNet-18 from random initialisation on the 100 Spanish images (as resnet18-es100-scratch; epochs chosen by $(es_cv 3)resnet18-es100-scratch.json)" \
        resnet18-es100-scratch
}

step_hc18_unet() {
    fetal-bench train unet --task hc18-head-seg --data "$HC18" --image-size 160 240 \
        --model-opt base_channels=16 --batch-size 8 --epochs 18 --patience 0 --seed 0 --mixed-precision no \
        --run-name unet-hc18-cpu-160x240-18ep --no-progress --output "$WORK/hc18-unet-160x240-18ep"
    # Masks become the ellipse fitted to the sub-pixel 0.5-probability contour (trimmed of leaks) of
    # flip-averaged logits, moved by an offset that makes the mean signed HC error of the TRAIN split
    # zero against the reference HC; saved in the checkpoint's config.json.
    fetal-bench models calibrate "$WORK/hc18-unet-160x240-18ep" --data "$HC18" --split train \
        --target reference_hc --flip-average
    fetal-bench evaluate --task hc18-head-seg --model unet --checkpoint "$WORK/hc18-unet-160x240-18ep" --data "$HC18" \
        --batch-size 8 --output "$RESULTS" --save-predictions "$PREDICTIONS/unet-hc18-cpu-160x240-18ep.parquet" \
        --description "U-Net, 16 base channels, 160x240 input, 18 epochs (1512 steps of 8) on the HC18 v1.0 train split, fp32 on 2 AVX2 CPU cores (64.6 min); best validation epoch; mask = ellipse fitted to the 0.5-probability contour (trimmed of leaks; of two lobes joined by a neck, the larger) of flip-averaged logits, offset calibrated to the reference HC on the train split" \
        --command "leaderboard/reproduce.sh hc18-unet"
}

# The hc18-unet recipe on the size-shift split (train on exams 000-599, heads up to 198.7 mm; test on
# exams 600-805), float32 (bf16 autocast is only faster on CPUs with bf16 units: AVX-512 BF16 or AMX;
# on an AVX2-only CPU it was about 10x slower); calibrated and evaluated as hc18-unet.
SIZE_SHIFT_DESCRIPTION="U-Net as hc18-unet (16 base channels, 160x240 input, 18 epochs of batch 8, float32) trained on the \
hc18-size-shift train split only (485 images of exams 000-599, heads up to 198.7 mm), CPU; best validation epoch; \
ellipse post-processing with the HC offset calibrated on that train split; scored on exams 600-805 (159.9-346.4 mm)"
step_hc18_size_shift() {
    fetal-bench train unet --task hc18-size-shift --data "$HC18_SIZE_SHIFT" --image-size 160 240 \
        --model-opt base_channels=16 --batch-size 8 --epochs 18 --patience 0 --seed 0 --mixed-precision no \
        --run-name unet-hc18-size-shift-cpu-160x240-18ep --no-progress --output "$WORK/hc18-size-shift-unet"
    fetal-bench models calibrate "$WORK/hc18-size-shift-unet" --data "$HC18_SIZE_SHIFT" --split train \
        --target reference_hc --flip-average
    fetal-bench evaluate --task hc18-size-shift --model unet --checkpoint "$WORK/hc18-size-shift-unet" \
        --data "$HC18_SIZE_SHIFT" --batch-size 8 --output "$RESULTS" \
        --save-predictions "$PREDICTIONS/unet-hc18-size-shift-cpu-160x240-18ep.parquet" \
        --description "$SIZE_SHIFT_DESCRIPTION" --command "leaderboard/reproduce.sh hc18-size-shift"
}

step_sononet16_zero_shot() {
    fetal-bench evaluate --task planes-africa-zero-shot --model sononet16-planes \
        --checkpoint "$FETAL_BENCH_SONONET16" --data "$AFRICA" --output "$RESULTS" --name sononet16-planes \
        --training-data none --save-predictions "$PREDICTIONS/sononet16-planes.csv" \
        --description "SonoNet-16 as published (UK fetal standard planes), 14 classes pooled onto the 4 planes plus Other; no African image seen" \
        --command "leaderboard/reproduce.sh sononet16-zero-shot"
    # The same probabilities with Other dropped and renormalised: argmax over the task's labels only.
    python -c "from fetal_bench.evaluation.harness import restrict_to_labels as r; from fetal_bench.tasks import get_task as t; \
r('$PREDICTIONS/sononet16-planes.csv', '$PREDICTIONS/sononet16-planes-task-labels.csv', t('planes-africa-zero-shot').labels)"
    fetal-bench evaluate --task planes-africa-zero-shot --predictions "$PREDICTIONS/sononet16-planes-task-labels.csv" \
        --data "$AFRICA" --output "$RESULTS" --name sononet16-planes-task-labels --training-data none \
        --description "SonoNet-16 as published, pooled onto the 4 planes with Other removed (argmax over the task's labels only); no African image seen" \
        --command "leaderboard/reproduce.sh sononet16-zero-shot"
}

step_sononet16_africa_ft() {
    train_api "{\"model\": \"sononet16\", \"task\": \"planes-africa\", \"data\": \"$AFRICA\", \"val_split\": null,
        \"epochs\": 10, \"lr\": 0.001, \"seed\": 0, \"run_name\": \"sononet16-africa-ft\",
        \"output\": \"$WORK/sononet16-africa-ft\"}"
    fetal-bench evaluate --task planes-africa --model sononet16 --checkpoint "$WORK/sononet16-africa-ft" --data "$AFRICA" \
        --output "$RESULTS" --save-predictions "$PREDICTIONS/sononet16-africa-ft.csv" \
        --description "SonoNet-16 from the published weights, new 4-plane head, fine-tuned 10 epochs on the 217 African train images (AdamW 1e-3, cosine, batch 32, ultrasound augmentation); 22 test images have a pixel-identical twin in train (official split)" \
        --command "leaderboard/reproduce.sh sononet16-africa-ft"
}

step_resnet18_africa_scratch() {
    train_api "{\"model\": \"resnet18\", \"task\": \"planes-africa\", \"data\": \"$AFRICA\", \"val_split\": null,
        \"epochs\": 10, \"image_size\": [128, 128], \"model_cfg\": {\"pretrained\": false}, \"seed\": 0,
        \"run_name\": \"resnet18-africa-scratch\", \"output\": \"$WORK/resnet18-africa-scratch\"}"
    fetal-bench evaluate --task planes-africa --model resnet18 --checkpoint "$WORK/resnet18-africa-scratch" \
        --data "$AFRICA" --output "$RESULTS" --save-predictions "$PREDICTIONS/resnet18-africa-scratch.csv" \
        --description "ResNet-18 from RANDOM initialisation (ImageNet weights cannot be downloaded on the machine that made it), gray 128x128, 10 epochs on the 217 African train images; 22 test images have a pixel-identical twin in train (official split)" \
        --command "leaderboard/reproduce.sh resnet18-africa-scratch"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(data hc18-unet hc18-size-shift sononet16-zero-shot sononet16-africa-ft resnet18-africa-scratch sononet16-es100-probe sononet16-es100-ft-cv sononet16-es100-ft resnet18-es100-scratch-cv resnet18-es100-scratch)
# Each step's wall time and the total, so that the reproduction's cost is measured, not guessed.
started_all=$SECONDS
for step in "${steps[@]}"; do
    started=$SECONDS
    case "$step" in
        data|hc18-unet|hc18-size-shift|sononet16-zero-shot|sononet16-africa-ft|resnet18-africa-scratch|\
        sononet16-es100-probe|sononet16-es100-ft-cv|sononet16-es100-ft|resnet18-es100-scratch-cv|resnet18-es100-scratch)
            [ "$step" = data ] || step_data
            "step_${step//-/_}"
            echo "reproduce.sh: step $step took $((SECONDS - started)) s" ;;
        *) echo "Error: unknown step '$step'." >&2
           echo "Fix: use one of: data hc18-unet hc18-size-shift sononet16-zero-shot sononet16-africa-ft resnet18-africa-scratch sononet16-es100-probe sononet16-es100-ft-cv sononet16-es100-ft resnet18-es100-scratch-cv resnet18-es100-scratch" >&2
           exit 2 ;;
    esac
done
# What the leaderboard will do with them: score every result again from its predictions.
if [ "${steps[*]}" != data ]; then
    started=$SECONDS
    fetal-bench leaderboard check "$RESULTS" --data hc18="$HC18" --data hc18-size-shift="$HC18_SIZE_SHIFT" \
        --data fetal-planes-africa="$AFRICA"
    echo "reproduce.sh: leaderboard check took $((SECONDS - started)) s"
fi
echo "reproduce.sh: all steps (${steps[*]}) took $((SECONDS - started_all)) s on $(nproc) cores"
