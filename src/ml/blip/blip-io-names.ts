/**
 * ONNX input and output names of the BLIP graphs (docs/model-format.md). The only module that
 * spells them; sessions check them against each graph at load.
 */
export const IO = {
  pixelValues: 'pixel_values',
  imageEmbeds: 'image_embeds',
  imageFeat: 'image_feat',
  itmStates: 'itm_states',
  itmScales: 'itm_scales',
  inputIds: 'input_ids',
  attentionMask: 'attention_mask',
  textFeat: 'text_feat',
  itmLogits: 'itm_logits',
  questionStates: 'question_states',
  encoderHiddenStates: 'encoder_hidden_states',
  crossKv: 'cross_kv',
  pastLength: 'past_length',
  newKv: 'new_kv',
  encoderAttentionMask: 'encoder_attention_mask',
  logits: 'logits',
} as const;

/** Per-layer decoder inputs (`past_key_values.3.value`...): one input per layer and key/value. */
export const LAYER_IO = {
  past: (layer: number, kind: 'key' | 'value') => `past_key_values.${layer}.${kind}`,
  cross: (layer: number, kind: 'key' | 'value') => `cross_key_values.${layer}.${kind}`,
} as const;
