from bbflow.cli import main

main()
