"""Arrays → pictures. No TensorFlow here."""
