"""One module per figure: ``compute(profile)`` → tidy DataFrame, ``draw(df)`` → Figure."""
