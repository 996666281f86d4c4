def phrase(greeting, name):
    return f"{greeting}, {name}!"
