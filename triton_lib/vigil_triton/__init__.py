"""What Vigil's Triton Python-backend models share.

Model folders under `triton_models/` cannot import each other, so the code they have
in common lives here and is installed into the Python that runs them: `imaging`
(pure Pillow: decode a request's image, refusing bombs and broken files) and
`requests` (needs `triton_python_backend_utils`, so it imports only inside Triton).
"""
