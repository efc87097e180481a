"""The web side of newsletter: the editors' preview (`newsletter preview`).

Each app is a small Starlette application over the same library the command
line uses (`newsletter.project.Project`): pages never render an email
themselves, they show what `Project.build` made.
"""
