"""The demo: real multi-tenant LLM traffic from ServeGen, replayed through rules.

``detector.demo.servegen`` builds the shipped extract and generates request
events from it; ``detector/demo/rules`` holds the rules the demo runs.
"""
