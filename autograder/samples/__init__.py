"""The kit's own sample class: mistakes, attacks, honest styles and copies, with the grades they
must get.
"""
