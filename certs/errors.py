# The one error the tool raises for anything a user can fix; cli.py prints it and exits 2.


class CertsError(Exception):
    def __init__(self, msg):
        super().__init__(msg)
