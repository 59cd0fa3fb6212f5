"""Blob storage backends: where attachment ciphertext lives (metadata is in the Store)."""
