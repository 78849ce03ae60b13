from sqlassets.cli import main

main()
