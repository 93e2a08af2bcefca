"""`python -m cnnviz`."""

from cnnviz.cli import main

main()
