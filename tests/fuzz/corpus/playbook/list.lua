return { { id = "a", symptom = { phase = "x" } }, { id = "b", symptom = { message = "y" } } }
