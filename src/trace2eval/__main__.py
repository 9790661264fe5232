from trace2eval.cli.main import main

main()
