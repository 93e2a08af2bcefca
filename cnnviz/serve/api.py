"""What GET /api answers: every route of the live server and what it takes and gives."""

API = {
    "GET /api/model": "the model: name, input shape, classes, layers with shapes and card URLs",
    "GET /api/sample?index=N|class=C[&split=test|train]": "a dataset image: pixels, index, label",
    "POST /api/predict[?arrays=base64|list]": "body: an image file, JSON {\"pixels\": [[0–255…]]} "
                                               "or {\"index\": N}; answers the input as fed, the "
                                               "prediction and every layer's output",
    "POST /api/trace": "JSON {\"pixels\", \"layer\", \"map\", \"at\": [row, col]}: every step "
                       "behind that value, checked against the network's",
    "POST /api/explain[?arrays=base64|list]": "the same body (JSON may add \"target\": CLASS); "
                                               "answers saliency and Grad-CAM of the target's logit",
    "GET /api/training": "the bundle's run as it stands: status, epochs done and planned, "
                         "history (null for a plain .keras file); the page follows a run "
                         "that is training and redraws after every epoch",
    "GET /api/geometry": "each layer's map of 1,000 test images (their places on its first two "
                         "principal axes, as m.geometry()): points, classes, variance shares",
    "POST /api/geometry": "the same body as predict: where the image lands on each layer's map",
    "arrays": "{\"shape\": [...], \"dtype\": \"float32\", \"data\": base64 of little-endian "
              "float32} (or nested lists with ?arrays=list)",
    "errors": "HTTP 400 (bad request) / 403 (foreign host or origin) / 404 / 500 with "
              "{\"error\": \"one line\"}; a score that is not finite is null",
}
