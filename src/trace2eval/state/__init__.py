"""Reading and writing a session's generated state (scorer specs, the dataset, validation results).

Below both the tasks and the LLM layer: the tasks write this state deterministically, an LLM
session adds to it, and neither imports the other to do so.
"""
