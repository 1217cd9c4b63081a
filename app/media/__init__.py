"""Uploaded files: multipart upload, content sniffing, size limits, storage backends.

Generic on purpose: dossiers attach documents through it, and the incidents domain extends it
(tus resumable uploads, photo/video formats, OpenCV processing) without reshaping it.
"""
