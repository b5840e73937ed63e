"""The staff console: the staff's view of the pipeline inside the Django admin.

`dashboard` gathers what the dashboard's panels show, `charts` draws their SVG geometry,
`story` tells one lead's history, and `views`/`urls` serve the dashboard under /admin/console/.
The ModelAdmins themselves are in `leads.admin`. The console may read `health` and `ops`.
"""
