"""The bundled model's second stage: everything (ITC, ITM, captions, VQA and the training-only
heads), from the image encoder of tools/recipes/scenes_hour_vision.py. 36 minutes on 2 cores of an
AVX512-BF16 Zen 5:

    export OPENBLAS_NUM_THREADS=1
    /usr/bin/python3 -m tools.train tools/recipes/scenes_hour_joint.py
    /usr/bin/python3 -m tools.export_scenes

Each step: 48 scenes with three questions each, 24 images drawn as the first stage draws them for
the training-only heads, and 48 texts without images for the attribute bag. docs/models.md says
what each option does for the model. The run that made the bundle had a 36-minute budget
(--minutes 36), which gave 4253 steps there; `steps` below reproduces that schedule anywhere.
"""
resume = "tools/checkpoints/hour-a.pt"
out = "tools/checkpoints/blip-scenes.pt"
bf16 = True
lr = 8e-4
warmup = 100
batch = 48
steps = 4253
seed = 52
workers = 1  # each data worker draws from its own seeded stream: the batches depend on it
threads = 2
questions = 3
word_noise = 0.4
aux_patch = 0.5
# the attribute bag: every text and the mix images, texts without images, positions
aux_bag = 0.5
aux_bag_text = True
aux_bag_mix = True
aux_bag_where = True
text_only = 48
text_only_placed = 0.5
# images for the training-only heads, recoloured and relit as in the first stage
vision_mix = 24
decolor = 0.2
rehue = 0.3
relight = 0.5
# joint scenes: relit grounds, no held-out combination as a negative, texts that place objects
joint_relight = 0.3
confounded_negatives = False
joint_placed = 0.3
itc_moved = 1.0
