from thinkctl.cli import main

if __name__ == "__main__":  # vLLM spawns processes: guard the entry point
    main()
