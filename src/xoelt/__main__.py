from xoelt.cli import main

main()
