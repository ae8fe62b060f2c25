"""training: tf.data pipelines, losses, training/distillation loops, export and the `cpm` CLI (no Qt)."""
