// Binds the traversal source `g` over the graph, as Neptune serves it.
def globals = [:]
globals << [g : traversal().withEmbedded(graph)]
