"""One module per pipeline stage: ``run(params) -> Result`` does the stage's work and writes its
artifacts; the stage's notebook calls it, then shows and explains the result."""
