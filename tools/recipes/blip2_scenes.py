"""The bundled scene BLIP-2 (models/blip2-scenes): tools/blip2/scenes_train.py's four steps (OPT on
scene language then frozen, the bundled BLIP ViT frozen, Q-Former stage 1 ITC+ITM+ITG, stage 2
generative). On 2 shared cores:

    export OPENBLAS_NUM_THREADS=1
    nice -n 19 /usr/bin/python3 -m tools.blip2.scenes_train tools/recipes/blip2_scenes.py --minutes 110

--minutes fits each stage into its share of the budget from its measured speed (lm_share,
stage1_share, the rest to stage 2); the steps each stage got are in models/blip2-scenes/training.json
("continues") and can be given here as *_steps without --minutes to reproduce the schedule. The
bundled folder then had a second stage-2 leg, chosen on a validation set (docs/blip2.md):

    nice -n 19 /usr/bin/python3 -m tools.blip2.scenes_train tools/recipes/blip2_scenes.py \
        --qformer-from FIRST_LEG --seed 48 --stage2-steps 2500 --stage2-lr 3e-4
"""
out = "models/blip2-scenes"
seed = 42
threads = 1
llm_hidden = 128
llm_layers = 4
llm_heads = 4
llm_ffn = 512
qformer_hidden = 128
qformer_layers = 2
qformer_heads = 4
qformer_ffn = 512
# 4 description windows of 8 tokens (scenes_train.windows): 32 queries take their places.
window = 8
cross_frequency = 1
pool = 4000
lm_steps = 20000
lm_batch = 32
lm_lr = 1e-3
# The two lookups between colour and shape are the last the LM learns to read: twice the draws
lm_type_weights = {"color_of_shape": 2.0, "shape_of_color": 2.0}
stage1_steps = 1000
stage1_batch = 32
stage1_lr = 1e-3
stage2_steps = 20000
stage2_batch = 24
stage2_questions = 3
stage2_lr = 1.5e-3
# lm_steps, not the share, bounds the LM stage here (0.17 s a step: 57 of the 110 minutes)
lm_share = 0.9
stage1_share = 0.08
# Stop after the LM if it cannot read its context (reading_probe): stage 2 would not do better.
lm_reading_min = 0.9
