"""What is installed, running and stored on this machine: runtimes, servers and model files."""
