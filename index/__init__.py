"""Build and load the citeqa index: documents in; chunks, embeddings, a FAISS file and metadata out.

Pipeline, one module per step: documents -> chunking -> embedder -> builder -> store.
"""
