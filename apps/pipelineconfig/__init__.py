"""Parsing and validating PipeCD's files: app.pipecd.yaml, piped-config.yaml, control-plane-config.yaml.

Imports no Django models: the piped uses it too.
"""
