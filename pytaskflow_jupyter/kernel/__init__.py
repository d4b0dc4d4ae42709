"""The notebook side: everything that runs inside a Jupyter kernel.

    session.py   composition root: the kernel's Store, EventBus and Runners (lazy, one per
                 kernel); finds and binds notebook functions
    api.py       Workflow (decorators over a definition) and Run (a handle on an execution)
    remote.py    what the server runs of a notebook workflow: snapshots of its notebook
                 functions (with_snapshots), where its schedule stands (WorkflowSchedule)
    magics.py    %taskflow / %%taskflow, a thin command line over api.py
    widgets.py   ExecutionWidget: live state from the shared database, drawn by the
                 labextension's widget module (the panel's view); text fallback

The public names (``Workflow``, ``Run``, ``ExecutionWidget``) are exported lazily by the
package root, so the server never imports IPython or ipywidgets.
"""
