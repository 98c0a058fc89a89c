"""The command line: parsing, prompts, the terminal display, Ctrl-C and the log file."""
