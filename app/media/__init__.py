"""Uploaded files: multipart and tus resumable uploads, content sniffing (documents, photos,
videos), limits and the per-account quota, OpenCV processing into public (blurred) versions,
signed links, local or S3 storage.

Generic on purpose: dossiers attach documents through it, incidents photos and videos; neither
reshapes it. One settings class (`config.py`), one errors module (`errors.py`).
"""
