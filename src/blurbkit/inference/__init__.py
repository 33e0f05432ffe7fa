"""Fine-tuned models on new text, from a saved model directory alone (no training code)."""
