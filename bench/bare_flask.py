"""The reference for the deploy endpoint's throughput: a bare Flask form-POST.

It reads the same form field and answers the same status, with nothing
behind it: no token, no database, no queue. gunicorn serves it with the
service's own ``gunicorn.conf.py``.
"""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/api/apps/<application_id>/deploy/")
def deploy(application_id):
    instance_id = request.form["lambda_instance_id"]
    return jsonify(application_id=application_id, lambda_instance_id=instance_id), 202
