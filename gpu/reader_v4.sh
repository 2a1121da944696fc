#!/usr/bin/env bash
# Reader v4 on one lent GPU (issue 10), in one device call, after gpu/README.md's transfer calls:
# fine-tune an MPNet teacher (all-mpnet-base-v2) on the training mix, then train the shipped
# MiniLM reader on the gold spans and on the teacher's span distributions (distillation), and
# write the student's fp16 weights to $OUT/reader-v4 in files that can come back.
#
#   G=.gpu bash gpu/reader_v4.sh                      # on the GPU machine
#   G=/tmp/g DEVICE=cpu TRY="--examples 40 --max-steps 2" OUT=/tmp/out bash gpu/reader_v4.sh
#                                                     # the same on a CPU, on a tiny slice
set -euo pipefail
G=${G:-.gpu}            # the folder the pieces of `gpu/pack.py pack` were gathered in
DEVICE=${DEVICE:-cuda}
TRY=${TRY:-}            # extra options for both runs, appended last (a dry run's small slice)
: "${OUT:?OUT must name the folder the weights go to}"
PY=${PY:-python3}       # the GPU machine's python3 holds torch and transformers
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
MIX=squad_v1.1_train=0.80,qamr_wikinews=0.08,squadshifts_new_wiki=0.05,qed_nq=0.04,tydiqa_goldp_en=0.03
COMMON=(--data "$G/train" --mix "$MIX" --examples 110000 --negative-rate 0.33 --device "$DEVICE"
        --log-every 200 --save-every 100000)
BF16=(); [ "$DEVICE" = cpu ] || BF16=(--bf16)
mkdir -p "$OUT"
{
  [ -d "$G/base" ] || $PY gpu/pack.py unpack "$G"
  # The teacher: all of MPNet trained, longer windows (it reads whole SQuAD paragraphs).
  $PY -m qa.cli train-reader --init "$G/base" --out "$G/teacher" "${COMMON[@]}" "${BF16[@]}" \
      --max-length 384 --stride 128 --batch-size 32 --epochs 1 --lr 3e-5 \
      --no-freeze-embeddings --seed 41 --export "$G/teacher/export" $TRY
  # The student: the shipped reader (v3.1) on the windows NewsQA reads (256/96), 70% of the loss
  # from the teacher.
  $PY -m qa.cli train-reader --init models/reader --out "$G/student" "${COMMON[@]}" \
      --max-length 256 --stride 96 --batch-size 48 --epochs 1 --lr 5e-5 --seed 42 \
      --teacher "$G/teacher/export" --distill-weight 0.7 --temperature 2 \
      --export "$G/student/export" $TRY
  $PY gpu/pack.py split "$G/student/export" "$OUT/reader-v4"
} 2>&1 | tee "$OUT/train.log"
