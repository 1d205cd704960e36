from recog.cli.main import main

main()
