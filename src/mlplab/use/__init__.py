"""A saved model put to work: image preprocessing, predict, the HTTP service and ONNX export."""
