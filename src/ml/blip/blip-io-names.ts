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
  pastKv: 'past_kv',
  pastLength: 'past_length',
  newKv: 'new_kv',
  encoderAttentionMask: 'encoder_attention_mask',
  logits: 'logits',
} as const;
