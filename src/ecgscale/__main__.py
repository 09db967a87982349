from ecgscale.cli import main

main()
